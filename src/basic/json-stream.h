/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Incremental framing of a stream of JSON texts (QMP, the guest agent): bytes are fed as they are read, in pieces
 * of any size, and every complete top-level value is handed to a handler. What the peer can make us hold is
 * bounded: the nesting depth (set at creation) and the size of one message (settable at any time, so a client can
 * raise it for the one reply it expects to be large). Whitespace between messages is skipped. */

#include <json-c/json.h>
#include <stddef.h>

#include "basic/macro.h"

typedef struct JsonStream JsonStream;

/* Called for every complete message; the message is borrowed for the call (json_object_get() to keep it). Return
 * 0 to go on with the rest of the input, > 0 to stop feeding (json_stream_feed() returns 0 and ignores the rest:
 * the caller has closed the connection, say), < 0 to stop with that error. The handler may reset the stream or
 * change its bound; it must not free it. */
typedef int (*JsonStreamHandler)(json_object *message, void *userdata);

/* max_depth: json_tokener_new_ex()'s depth; max_message_size: the bound of one message in bytes. */
int json_stream_new(JsonStream **ret, int max_depth, size_t max_message_size);
JsonStream *json_stream_free(JsonStream *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(JsonStream *, json_stream_free);

/* json_tokener_set_flags() (JSON_TOKENER_STRICT, JSON_TOKENER_VALIDATE_UTF8); 0 by default. */
void json_stream_set_flags(JsonStream *s, int flags);
/* Applies to the message being read now (bytes already counted count against it) and those after. */
void json_stream_set_max_message_size(JsonStream *s, size_t max_message_size);
size_t json_stream_get_max_message_size(const JsonStream *s);

/* Drops the unfinished message, if any: the next byte starts a new one. */
void json_stream_reset(JsonStream *s);
/* Bytes of the unfinished message read so far (0 between messages). */
size_t json_stream_pending(const JsonStream *s);

/* Feeds n bytes. Returns 0 when all were consumed (or the handler asked to stop), the handler's error, -EBADMSG
 * when the input is not JSON or nests deeper than max_depth, -EMSGSIZE when a message exceeds the bound. After an
 * error the stream is in an undefined position: reset it (or drop the connection) before feeding again. */
int json_stream_feed(JsonStream *s, const char *buf, size_t n, JsonStreamHandler handler, void *userdata);
