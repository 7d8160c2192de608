/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Replays inputs through a fuzz target without libFuzzer: every argument is a file or a corpus directory
 * (all regular files in it, in name order). Fails when there was nothing to replay, so a mistyped corpus
 * path cannot pass as a green test. */

#include <dirent.h>
#include <stdio.h>
#include <sys/stat.h>

#include "basic/fileio.h"
#include "fuzz.h"

#define INPUT_MAX (16U * 1024U * 1024U)

static int replay_file(const char *path) {
        _cleanup_free_ char *buf = NULL;
        size_t size;
        int r;

        r = read_full_file(path, INPUT_MAX, &buf, &size);
        if (r < 0) {
                fprintf(stderr, "Failed to read %s: %s\n", path, strerror(-r));
                return r;
        }
        fprintf(stderr, "Running %s (%zu bytes)\n", path, size);
        (void) LLVMFuzzerTestOneInput((const uint8_t *) buf, size);
        return 0;
}

static int replay_dir(const char *path, unsigned *n) {
        struct dirent **entries = NULL;
        int k, r = 0;

        k = scandir(path, &entries, NULL, alphasort);
        if (k < 0) {
                fprintf(stderr, "Failed to list %s: %m\n", path);
                return -errno;
        }
        for (int i = 0; i < k; i++) {
                _cleanup_free_ char *p = NULL;
                struct stat st;

                if (r >= 0 && entries[i]->d_name[0] != '.') {
                        p = path_join(path, entries[i]->d_name);
                        if (!p)
                                r = -ENOMEM;
                        else if (stat(p, &st) < 0)
                                r = -errno;
                        else if (S_ISREG(st.st_mode)) {
                                r = replay_file(p);
                                if (r >= 0)
                                        (*n)++;
                        }
                }
                free(entries[i]);
        }
        free(entries);
        return r;
}

int main(int argc, char *argv[]) {
        unsigned n = 0;
        int r;

        for (int i = 1; i < argc; i++) {
                struct stat st;

                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "Failed to stat %s: %m\n", argv[i]);
                        return EXIT_FAILURE;
                }
                if (S_ISDIR(st.st_mode))
                        r = replay_dir(argv[i], &n);
                else {
                        r = replay_file(argv[i]);
                        if (r >= 0)
                                n++;
                }
                if (r < 0)
                        return EXIT_FAILURE;
        }

        if (n == 0) {
                fprintf(stderr, "No inputs to replay.\n");
                return EXIT_FAILURE;
        }
        fprintf(stderr, "%u inputs replayed.\n", n);
        return EXIT_SUCCESS;
}
