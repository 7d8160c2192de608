/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <limits.h>
#include <stdlib.h>

#include "basic/json-stream.h"
#include "basic/json-util.h"

struct JsonStream {
        json_tokener *tokener;
        size_t message_bytes;           /* bytes fed into the current, unfinished message */
        size_t max_message_size;
};

int json_stream_new(JsonStream **ret, int max_depth, size_t max_message_size) {
        JsonStream *s;

        if (max_depth <= 0 || max_message_size == 0)
                return -EINVAL;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->tokener = json_tokener_new_ex(max_depth);
        if (!s->tokener) {
                free(s);
                return -ENOMEM;
        }
        s->max_message_size = max_message_size;
        *ret = s;
        return 0;
}

JsonStream *json_stream_free(JsonStream *s) {
        if (!s)
                return NULL;
        json_tokener_free(s->tokener);
        free(s);
        return NULL;
}

void json_stream_set_flags(JsonStream *s, int flags) {
        json_tokener_set_flags(s->tokener, flags);
}

void json_stream_set_max_message_size(JsonStream *s, size_t max_message_size) {
        s->max_message_size = max_message_size;
}

size_t json_stream_get_max_message_size(const JsonStream *s) {
        return s->max_message_size;
}

void json_stream_reset(JsonStream *s) {
        json_tokener_reset(s->tokener);
        s->message_bytes = 0;
}

size_t json_stream_pending(const JsonStream *s) {
        return s->message_bytes;
}

static bool is_space(char c) {
        return c == '\r' || c == '\n' || c == ' ' || c == '\t';
}

int json_stream_feed(JsonStream *s, const char *buf, size_t n, JsonStreamHandler handler, void *userdata) {
        while (n > 0) {
                _cleanup_json_ json_object *m = NULL;
                enum json_tokener_error e;
                size_t used, chunk;
                int r;

                /* Whitespace between messages is not part of one (and not counted against its bound). */
                if (s->message_bytes == 0 && is_space(*buf)) {
                        buf++;
                        n--;
                        continue;
                }

                chunk = MIN(n, (size_t) INT32_MAX);
                m = json_tokener_parse_ex(s->tokener, buf, (int) chunk);
                e = json_tokener_get_error(s->tokener);
                used = json_tokener_get_parse_end(s->tokener);

                if (!m) {
                        if (e != json_tokener_continue)
                                return -EBADMSG;
                        if (chunk > s->max_message_size - MIN(s->message_bytes, s->max_message_size))
                                return -EMSGSIZE;
                        s->message_bytes += chunk;
                        buf += chunk;
                        n -= chunk;
                        continue;
                }

                if (used == 0 || used > chunk)
                        used = chunk;
                if (used > s->max_message_size - MIN(s->message_bytes, s->max_message_size))
                        return -EMSGSIZE;
                json_stream_reset(s);
                buf += used;
                n -= used;

                r = handler(m, userdata);
                if (r < 0)
                        return r;
                if (r > 0)
                        return 0;
        }
        return 0;
}
