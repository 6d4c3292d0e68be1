/* gw_console.c: the web console at /_miroir/: a static page that reads /_miroir/topology and
 * searches through the gateway's own API with the key the user types in. */
#include <string.h>

#include "gw.h"

extern const char gw_console_html[];

void gw_route_console(gw *g, const gw_request *req, gw_response *res)
{
    (void)g;
    (void)req;
    res->status = 200;
    res->text = strdup(gw_console_html);
    res->text_type = "text/html; charset=utf-8";
}
