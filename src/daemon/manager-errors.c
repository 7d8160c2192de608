/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <string.h>

#include "daemon/manager-errors.h"

enum { WHERE_VARLINK = 1 << 0, WHERE_BUS = 1 << 1, WHERE_BOTH = WHERE_VARLINK | WHERE_BUS };

static const struct {
        const char *varlink;
        const char *bus;
} errors[_MANAGER_ERROR_MAX] = {
#define MANAGER_ERROR_NAMES(code, name, where)                                                          \
        [MANAGER_ERROR_##code] = {                                                                      \
                .varlink = (WHERE_##where & WHERE_VARLINK) ? MANAGER_ERROR_VARLINK_PREFIX #name : NULL, \
                .bus = (WHERE_##where & WHERE_BUS) ? MANAGER_ERROR_BUS_PREFIX #name : NULL,             \
        },
        MANAGER_ERRORS(MANAGER_ERROR_NAMES)
#undef MANAGER_ERROR_NAMES
};

const char *manager_error_varlink(ManagerErrorCode code) {
        assert(code >= 0 && code < _MANAGER_ERROR_MAX);
        assert(errors[code].varlink);
        return errors[code].varlink;
}

const char *manager_error_bus(ManagerErrorCode code) {
        assert(code >= 0 && code < _MANAGER_ERROR_MAX);
        assert(errors[code].bus);
        return errors[code].bus;
}

ManagerErrorCode manager_error_from_varlink(const char *name) {
        if (!name)
                return _MANAGER_ERROR_INVALID;
        for (ManagerErrorCode c = 0; c < _MANAGER_ERROR_MAX; c++)
                if (errors[c].varlink && strcmp(errors[c].varlink, name) == 0)
                        return c;
        return _MANAGER_ERROR_INVALID;
}

const char *manager_error_bus_from_varlink(const char *name) {
        ManagerErrorCode c = manager_error_from_varlink(name);

        return c >= 0 ? errors[c].bus : NULL;
}
