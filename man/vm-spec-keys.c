/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Prints the key table of memvisor.vm(5) as the daemon has it (vm_spec_key_get()), one "SECTION KEY" line per
 * key ("multiple" appended for keys that may repeat), in the order of the canonical INI text. check-vm-docs.py
 * compares it with the man page. Not installed. */
#include <stdio.h>

#include "vm/vm-spec.h"

int main(void) {
        const char *section, *key;
        bool multiple;

        for (size_t i = 0; vm_spec_key_get(i, &section, &key, &multiple); i++)
                printf("%s %s%s\n", section, key, multiple ? " multiple" : "");
        return fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
}
