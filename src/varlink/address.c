/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "varlink/address.h"
#include "basic/macro.h"

static int fail(const char **ret_reason, const char *reason, int error) {
        if (ret_reason)
                *ret_reason = reason;
        return error;
}

int varlink_address_parse(const char *address, VarlinkAddress *ret, const char **ret_reason) {
        VarlinkAddress a = { .sa.sun_family = AF_UNIX };
        const char *p;
        size_t l;

        if (!address || !*address)
                return fail(ret_reason, "empty address", -EINVAL);

        p = startswith(address, "unix:");
        if (!p) {
                const char *colon = strchr(address, ':');

                if (colon && address[0] != '/' && address[0] != '@')
                        return fail(ret_reason, "only unix: addresses are supported (unix:/path or unix:@name)",
                                    -EPROTONOSUPPORT);
                p = address;
        }
        if (strchr(p, ';'))
                return fail(ret_reason, "address parameters (;…) are not supported", -EPROTONOSUPPORT);

        l = strlen(p);
        if (p[0] == '@') {
                if (l < 2)
                        return fail(ret_reason, "empty abstract socket name", -EINVAL);
                /* The abstract namespace: a NUL, then the name, without a trailing NUL. */
                if (l > sizeof(a.sa.sun_path))
                        return fail(ret_reason, "abstract socket name too long", -ENAMETOOLONG);
                memcpy(a.sa.sun_path + 1, p + 1, l - 1);
                a.salen = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + l);
                a.abstract = true;
        } else {
                if (p[0] != '/')
                        return fail(ret_reason, "expected an absolute path (unix:/path) or an abstract name (unix:@name)",
                                    -EINVAL);
                if (l >= sizeof(a.sa.sun_path))
                        return fail(ret_reason, "socket path too long (at most 107 bytes)", -ENAMETOOLONG);
                memcpy(a.sa.sun_path, p, l);
                a.salen = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + l + 1);
        }

        *ret = a;
        return 0;
}
