/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "basic/macro.h"

/* A parser for systemd-style INI files: "[Section]" headers, "Key=Value" assignments, '#' and ';'
 * comments, trailing '\' continues a line. Keys are dispatched through a table; the first problem
 * stops parsing and is reported as "FILE:LINE: reason". */

/* Parses value into data (= userdata + item->offset). On failure returns a negative errno and may set
 * *ret_reason to a malloc'ed explanation (without file/line, which the caller adds). */
typedef int (*IniParseFn)(const char *key, const char *value, void *data, const void *aux, char **ret_reason);

typedef struct IniItem {
        const char *section;
        const char *key;
        IniParseFn parse;
        size_t offset;
        const void *aux;        /* extra argument for the parser (e.g. bounds) */
} IniItem;

/* Upper bound of a config file, to keep a stray huge file from being slurped. */
#define INI_FILE_MAX (1024U * 1024U)

/* Parses buf; filename is used for messages only. items is terminated by an entry with section == NULL.
 * On error returns negative errno and *ret_error = "FILE:LINE: reason". */
int ini_parse_buffer(const char *filename, const char *buf, const IniItem *items, void *userdata,
                     char **ret_error);

/* Parses a file; a missing file → -ENOENT with no ret_error set. */
int ini_parse_file(const char *path, const IniItem *items, void *userdata, char **ret_error);

/* The line of the last assignment of key in [section] of the file at path (1-based), 0 when there is none or the
 * file cannot be read: for errors that only a check across keys finds, after parsing. */
unsigned ini_file_key_line(const char *path, const char *section, const char *key);

/* Stock value parsers. aux for unsigned/size/sec: NULL or a const IniRange*. */
typedef struct IniRange {
        uint64_t min, max;
} IniRange;

int ini_parse_string(const char *key, const char *value, void *data, const void *aux, char **ret_reason);  /* char* */
int ini_parse_path(const char *key, const char *value, void *data, const void *aux, char **ret_reason);    /* char*, absolute */
int ini_parse_bool(const char *key, const char *value, void *data, const void *aux, char **ret_reason);    /* bool */
int ini_parse_unsigned(const char *key, const char *value, void *data, const void *aux, char **ret_reason);/* unsigned */
int ini_parse_size(const char *key, const char *value, void *data, const void *aux, char **ret_reason);    /* uint64_t */
int ini_parse_sec(const char *key, const char *value, void *data, const void *aux, char **ret_reason);     /* uint64_t usec */
int ini_parse_mode(const char *key, const char *value, void *data, const void *aux, char **ret_reason);    /* mode_t */
int ini_parse_log_level(const char *key, const char *value, void *data, const void *aux, char **ret_reason);/* int */
