/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What a guest writes on its console, the daemon's and memvisorctl's handling of it: utf8_escape_untrusted()
 * must give valid UTF-8 text with no control character but newline and tab; console_panic_lines() at most the
 * lines asked for, each text without a newline; the console writer's panic scan, fed in chunks of the size the
 * first byte gives, must see the kernel's panic marker exactly when the input holds it. */

#include "fuzz.h"
#include "basic/strv.h"
#include "basic/utf8.h"
#include "vm/console-history.h"

static void check_text(const char *s, bool newlines) {
        if (!utf8_is_valid_text(s, strlen(s)))
                abort();
        for (const char *p = s; *p; p++)
                if (((unsigned char) *p < 0x20 && *p != '\t' && (*p != '\n' || !newlines)) || *p == 0x7f)
                        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *escaped = NULL;
        _cleanup_(strv_freep) char **lines = NULL;
        ConsoleWriter w = CONSOLE_WRITER_INIT;
        size_t chunk, max_lines;
        bool has_marker;

        if (size < 1 || size > 256 * 1024)
                return 0;
        fuzz_setup_logging();
        chunk = 1 + data[0] % 64;
        max_lines = data[0] % 25;
        data++, size--;

        escaped = utf8_escape_untrusted((const char *) data, size);
        if (!escaped)
                abort();
        check_text(escaped, true);

        if (console_panic_lines((const char *) data, size, max_lines, &lines) < 0)
                abort();
        if (strv_length(lines) > max_lines)
                abort();
        for (char **l = lines; *l; l++)
                check_text(*l, false);

        has_marker = memmem(data, size, CONSOLE_PANIC_MARKER, strlen(CONSOLE_PANIC_MARKER)) != NULL;
        for (size_t o = 0; o < size; o += chunk)
                if (console_writer_write(&w, data + o, MIN(chunk, size - o)) != -EBADF)
                        abort();        /* no file: only the scan runs */
        if (w.panic_seen != has_marker)
                abort();
        return 0;
}
