/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* The libFuzzer entry point every fuzz target defines. Built either with -fsanitize=fuzzer, or with
 * fuzz-main.c, which replays files and corpus directories given on the command line. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
