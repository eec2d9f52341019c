/* CA Gateway v1 endpoints (placeholder table until the handlers land). */
#include "api/api_cagw.h"

const struct route cagw_routes[] = {
    {"GET", "/cagw/v1/certificate-authorities", NULL, 0},
};
const size_t cagw_routes_count = 0;
