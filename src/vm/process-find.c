/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "vm/process-find.h"

#define SO_ACCEPTCON_FLAG 0x00010000U   /* __SO_ACCEPTCON in /proc/net/unix's Flags: a listening socket */

DEFINE_TRIVIAL_CLEANUP_FUNC_VOID(FILE *, fclose);
DEFINE_TRIVIAL_CLEANUP_FUNC_VOID(DIR *, closedir);

/* The inode of the listening socket bound at path, from /proc/net/unix; 0 if there is none. */
static int unix_socket_inode(const char *proc_root, const char *path, unsigned long *ret) {
        _cleanup_free_ char *net_unix = path_join(proc_root, "net/unix");
        _cleanup_(fclosep) FILE *f = NULL;
        char line[4096 + 256];

        if (!net_unix)
                return -ENOMEM;
        f = fopen(net_unix, "re");
        if (!f)
                return -errno;
        *ret = 0;
        while (fgets(line, sizeof(line), f)) {
                unsigned flags, type, st;
                unsigned long inode;
                int n = 0;
                char *p;

                /* "Num: RefCount Protocol Flags Type St Inode Path" */
                if (sscanf(line, "%*s %*x %*x %x %x %x %lu %n", &flags, &type, &st, &inode, &n) != 4 || n == 0)
                        continue;
                p = line + n;
                p[strcspn(p, "\n")] = 0;
                if ((flags & SO_ACCEPTCON_FLAG) && strcmp(p, path) == 0) {
                        *ret = inode;
                        return 0;
                }
        }
        return 0;
}

int process_find_socket_holder(const char *proc_root, const char *socket_path, pid_t except, pid_t *ret_pid) {
        _cleanup_(closedirp) DIR *proc = NULL;
        unsigned long inode;
        struct dirent *de;
        char want[64];
        int r;

        r = unix_socket_inode(proc_root, socket_path, &inode);
        if (r < 0)
                return r;
        if (inode == 0)
                return -ESRCH;
        (void) snprintf(want, sizeof(want), "socket:[%lu]", inode);

        proc = opendir(proc_root);
        if (!proc)
                return -errno;
        while ((de = readdir(proc))) {
                _cleanup_(closedirp) DIR *fds = NULL;
                struct dirent *fe;
                char path[sizeof(de->d_name) + 8];
                pid_t pid;

                if (!isdigit((unsigned char) de->d_name[0]))
                        continue;
                pid = (pid_t) strtol(de->d_name, NULL, 10);
                if (pid <= 0 || pid == except)
                        continue;
                (void) snprintf(path, sizeof(path), "%s/fd", de->d_name);
                r = openat(dirfd(proc), path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (r < 0)
                        continue;       /* gone, or not ours to look at */
                fds = fdopendir(r);
                if (!fds) {
                        (void) close(r);
                        continue;
                }
                while ((fe = readdir(fds))) {
                        char link[64];
                        ssize_t l;

                        if (fe->d_name[0] == '.')
                                continue;
                        l = readlinkat(dirfd(fds), fe->d_name, link, sizeof(link) - 1);
                        if (l <= 0)
                                continue;
                        link[l] = 0;
                        if (strcmp(link, want) == 0) {
                                *ret_pid = pid;
                                return 0;
                        }
                }
        }
        return -ESRCH;
}
