/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <sys/socket.h>
#include <sys/un.h>

/* A varlink address as the varlink spec and every varlink tool write it: "unix:/run/x" (a socket file),
 * "unix:@name" (the abstract namespace), or the same without the "unix:" prefix. Other transports
 * ("tcp:", "exec:", …) and address parameters (";mode=0666") are refused. */
typedef struct VarlinkAddress {
        struct sockaddr_un sa;
        socklen_t salen;
        bool abstract;          /* else sa.sun_path is the socket file's path, NUL-terminated */
} VarlinkAddress;

/* 0, or -EINVAL (empty, relative, bad character), -ENAMETOOLONG, -EPROTONOSUPPORT (another transport or
 * parameters); *ret_reason (if not NULL) then says what was wrong, for the caller's message. */
int varlink_address_parse(const char *address, VarlinkAddress *ret, const char **ret_reason);
