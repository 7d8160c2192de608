/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <systemd/sd-id128.h>
#include <time.h>

#include "varlink/certification.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "varlink/varlink-idl.h"

#define CERT_INTERFACE "org.varlink.certification"

typedef enum CertificationStep {
        CERTIFICATION_STEP_START,
        CERTIFICATION_STEP_TEST01,
        CERTIFICATION_STEP_TEST02,
        CERTIFICATION_STEP_TEST03,
        CERTIFICATION_STEP_TEST04,
        CERTIFICATION_STEP_TEST05,
        CERTIFICATION_STEP_TEST06,
        CERTIFICATION_STEP_TEST07,
        CERTIFICATION_STEP_TEST08,
        CERTIFICATION_STEP_TEST09,
        CERTIFICATION_STEP_TEST10,
        CERTIFICATION_STEP_TEST11,
        CERTIFICATION_STEP_END,
        _CERTIFICATION_STEP_MAX,
} CertificationStep;

/* The values every reference server sends and expects (python, rust and go agree on them). */
#define CERT_STRUCT "{\"bool\": false, \"int\": 2, \"float\": 3.141592653589793, \"string\": \"a lot of string\"}"
#define CERT_MAP "{\"foo\": \"Foo\", \"bar\": \"Bar\"}"
#define CERT_SET "{\"one\": {}, \"two\": {}, \"three\": {}}"
#define CERT_MYTYPE                                                                                     \
        "{\"object\": {\"method\": \"org.varlink.certification.Test09\", \"parameters\": {\"map\": " CERT_MAP "}}," \
        " \"enum\": \"two\","                                                                           \
        " \"struct\": {\"first\": 1, \"second\": \"2\"},"                                               \
        " \"array\": [\"one\", \"two\", \"three\"],"                                                    \
        " \"dictionary\": " CERT_MAP ","                                                                \
        " \"stringset\": " CERT_SET ","                                                                 \
        " \"nullable\": null,"                                                                          \
        " \"nullable_array_struct\": null,"                                                             \
        " \"interface\": {\"foo\": [null, {\"foo\": \"foo\", \"bar\": \"bar\"}, null, {\"one\": \"foo\", \"two\": \"bar\"}]," \
        " \"anon\": {\"foo\": true, \"bar\": false}}}"
#define CERT_TEST10_REPLIES 10U

typedef struct CertificationStepInfo {
        const char *method;             /* the full method name */
        VarlinkCallFlags mode;          /* exactly these call flags are expected */
        const char *parameters;         /* expected parameters besides client_id (JSON) */
        const char *reply;              /* reply parameters (JSON); NULL: handled specially */
} CertificationStepInfo;

static const CertificationStepInfo steps[_CERTIFICATION_STEP_MAX] = {
        [CERTIFICATION_STEP_START] = { CERT_INTERFACE ".Start", 0, NULL, NULL },
        [CERTIFICATION_STEP_TEST01] = { CERT_INTERFACE ".Test01", 0, "{}", "{\"bool\": true}" },
        [CERTIFICATION_STEP_TEST02] = { CERT_INTERFACE ".Test02", 0, "{\"bool\": true}", "{\"int\": 1}" },
        [CERTIFICATION_STEP_TEST03] = { CERT_INTERFACE ".Test03", 0, "{\"int\": 1}", "{\"float\": 1.0}" },
        [CERTIFICATION_STEP_TEST04] = { CERT_INTERFACE ".Test04", 0, "{\"float\": 1.0}", "{\"string\": \"ping\"}" },
        [CERTIFICATION_STEP_TEST05] = { CERT_INTERFACE ".Test05", 0, "{\"string\": \"ping\"}", CERT_STRUCT },
        [CERTIFICATION_STEP_TEST06] = { CERT_INTERFACE ".Test06", 0, CERT_STRUCT, "{\"struct\": " CERT_STRUCT "}" },
        [CERTIFICATION_STEP_TEST07] = { CERT_INTERFACE ".Test07", 0, "{\"struct\": " CERT_STRUCT "}",
                                        "{\"map\": " CERT_MAP "}" },
        [CERTIFICATION_STEP_TEST08] = { CERT_INTERFACE ".Test08", 0, "{\"map\": " CERT_MAP "}", "{\"set\": " CERT_SET "}" },
        [CERTIFICATION_STEP_TEST09] = { CERT_INTERFACE ".Test09", 0, "{\"set\": " CERT_SET "}",
                                        "{\"mytype\": " CERT_MYTYPE "}" },
        [CERTIFICATION_STEP_TEST10] = { CERT_INTERFACE ".Test10", VARLINK_CALL_MORE, "{\"mytype\": " CERT_MYTYPE "}",
                                        NULL },
        [CERTIFICATION_STEP_TEST11] = { CERT_INTERFACE ".Test11", VARLINK_CALL_ONEWAY,
                                        "{\"last_more_replies\": [\"Reply number 1\", \"Reply number 2\","
                                        " \"Reply number 3\", \"Reply number 4\", \"Reply number 5\","
                                        " \"Reply number 6\", \"Reply number 7\", \"Reply number 8\","
                                        " \"Reply number 9\", \"Reply number 10\"]}",
                                        "{}" },
        [CERTIFICATION_STEP_END] = { CERT_INTERFACE ".End", 0, "{}", "{\"all_ok\": true}" },
};

typedef struct CertificationClient {
        char id[SD_ID128_UUID_STRING_MAX];      /* empty: the slot is free */
        CertificationStep next;
        uint64_t last_usec;                     /* CLOCK_MONOTONIC, for expiry */
        uint64_t last_seq;                      /* for eviction; timestamps may tie */
} CertificationClient;

/* Handlers get the server's userdata (the daemon's), not the interface's, so the runs live here. The
 * table is fixed-size: a peer cannot make it grow. */
static CertificationClient clients[CERTIFICATION_CLIENTS_MAX];
static uint64_t clients_seq;

static uint64_t now_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

static void client_drop(CertificationClient *cl) {
        *cl = (CertificationClient) {};
}

static void client_touch(CertificationClient *cl, uint64_t now) {
        cl->last_usec = now;
        cl->last_seq = ++clients_seq;
}

static void clients_expire(uint64_t now) {
        for (size_t i = 0; i < ELEMENTSOF(clients); i++)
                if (clients[i].id[0] && now - clients[i].last_usec > CERTIFICATION_CLIENT_IDLE_USEC) {
                        log_debug("Certification client %s idle for too long, dropping it.", clients[i].id);
                        client_drop(&clients[i]);
                }
}

static CertificationClient *client_find(const char *id) {
        if (isempty(id))
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(clients); i++)
                if (clients[i].id[0] && streq(clients[i].id, id))
                        return &clients[i];
        return NULL;
}

static int client_new(uint64_t now, CertificationClient **ret) {
        CertificationClient *slot = NULL;
        sd_id128_t id;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(clients); i++) {
                if (!clients[i].id[0]) {
                        slot = &clients[i];
                        break;
                }
                if (!slot || clients[i].last_seq < slot->last_seq)
                        slot = &clients[i];
        }
        if (slot->id[0])
                log_debug("Too many certification clients (%u), dropping the least recently used one, %s.",
                          CERTIFICATION_CLIENTS_MAX, slot->id);

        r = sd_id128_randomize(&id);
        if (r < 0)
                return r;

        client_drop(slot);
        (void) sd_id128_to_uuid_string(id, slot->id);
        slot->next = CERTIFICATION_STEP_TEST01;
        client_touch(slot, now);
        *ret = slot;
        return 0;
}

/* Compares a received value against the expected one as a typed varlink peer would: an absent object
 * member equals null (optional fields), an int is an acceptable float, a float is not an acceptable int. */
static bool cert_json_equal(json_object *wants, json_object *got) {
        switch (json_object_get_type(wants)) {
        case json_type_null:
                return json_object_get_type(got) == json_type_null;

        case json_type_boolean:
                return json_object_is_type(got, json_type_boolean) &&
                       json_object_get_boolean(got) == json_object_get_boolean(wants);

        case json_type_int:
                return json_object_is_type(got, json_type_int) &&
                       json_object_get_int64(got) == json_object_get_int64(wants);

        case json_type_double:
                return (json_object_is_type(got, json_type_double) || json_object_is_type(got, json_type_int)) &&
                       json_object_get_double(got) == json_object_get_double(wants);

        case json_type_string:
                return json_object_is_type(got, json_type_string) &&
                       json_object_get_string_len(got) == json_object_get_string_len(wants) &&
                       memcmp(json_object_get_string(got), json_object_get_string(wants),
                              (size_t) json_object_get_string_len(wants)) == 0;

        case json_type_array: {
                size_t n = json_object_array_length(wants);

                if (!json_object_is_type(got, json_type_array) || json_object_array_length(got) != n)
                        return false;
                for (size_t i = 0; i < n; i++)
                        if (!cert_json_equal(json_object_array_get_idx(wants, i), json_object_array_get_idx(got, i)))
                                return false;
                return true;
        }

        case json_type_object:
                if (!json_object_is_type(got, json_type_object))
                        return false;
                json_object_object_foreach(wants, wkey, wvalue) {
                        json_object *g = NULL;

                        (void) json_object_object_get_ex(got, wkey, &g);
                        if (!cert_json_equal(wvalue, g))
                                return false;
                }
                json_object_object_foreach(got, gkey, gvalue)
                        if (!json_object_object_get_ex(wants, gkey, NULL) &&
                            json_object_get_type(gvalue) != json_type_null)
                                return false;
                return true;
        }

        return false;
}

static int json_parse_literal(const char *text, json_object **ret) {
        json_object *o = json_tokener_parse(text);

        /* The literals are ours; the only way parsing them fails is memory. */
        if (!o)
                return -ENOMEM;
        *ret = o;
        return 0;
}

/* The parameters a step expects: client_id first, as the clients send it, then the step's values. */
static int expected_parameters(CertificationStep step, const char *client_id, json_object **ret) {
        _cleanup_json_ json_object *values = NULL, *p = NULL;
        int r;

        r = json_parse_literal(steps[step].parameters, &values);
        if (r < 0)
                return r;

        p = json_object_new_object();
        if (!p)
                return -ENOMEM;
        if ((r = json_add_string(p, "client_id", client_id)) < 0)
                return r;
        json_object_object_foreach(values, key, value)
                if (json_object_object_add(p, key, json_object_get(value)) < 0) {
                        json_object_put(value);
                        return -ENOMEM;
                }

        *ret = TAKE_PTR(p);
        return 0;
}

/* {"method": …, "parameters": …, "more": true, "oneway": true}, as a call looks on the wire. Takes
 * ownership of parameters (may be NULL: no "parameters" member). */
static int call_object(const char *method, json_object *parameters, VarlinkCallFlags flags, json_object **ret) {
        _cleanup_json_ json_object *p = parameters, *o = NULL;
        int r;

        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        if ((r = json_add_string(o, "method", method)) < 0)
                return r;
        if (p && (r = json_add(o, "parameters", TAKE_PTR(p))) < 0)
                return r;
        if ((flags & VARLINK_CALL_MORE) && (r = json_add_bool(o, "more", true)) < 0)
                return r;
        if ((flags & VARLINK_CALL_ONEWAY) && (r = json_add_bool(o, "oneway", true)) < 0)
                return r;

        *ret = TAKE_PTR(o);
        return 0;
}

/* Replies CertificationError(wants, got); got is the call as received. Takes ownership of wants. */
static int reply_certification_error(VarlinkConnection *c, CertificationStep step, json_object *parameters,
                                     VarlinkCallFlags flags, json_object *wants) {
        _cleanup_json_ json_object *w = wants, *got = NULL, *p = NULL;
        int r;

        r = call_object(steps[step].method, json_object_get(parameters), flags, &got);
        if (r < 0)
                return r;

        p = json_object_new_object();
        if (!p)
                return -ENOMEM;
        if ((r = json_add(p, "wants", TAKE_PTR(w))) < 0 ||
            (r = json_add(p, "got", TAKE_PTR(got))) < 0)
                return r;

        return varlink_error(c, CERTIFICATION_ERROR_CERTIFICATION, TAKE_PTR(p));
}

static int cert_start(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags) {
        _cleanup_json_ json_object *reply = NULL;
        CertificationClient *cl;
        uint64_t now = now_usec();
        int r;

        if (flags != steps[CERTIFICATION_STEP_START].mode) {
                _cleanup_json_ json_object *wants = NULL;

                log_debug("Certification: Start called with the wrong flags.");
                r = call_object(steps[CERTIFICATION_STEP_START].method, NULL, steps[CERTIFICATION_STEP_START].mode,
                                &wants);
                if (r < 0)
                        return r;
                return reply_certification_error(c, CERTIFICATION_STEP_START, parameters, flags, TAKE_PTR(wants));
        }

        clients_expire(now);
        r = client_new(now, &cl);
        if (r < 0)
                return r;

        reply = json_object_new_object();
        if (!reply || json_add_string(reply, "client_id", cl->id) < 0) {
                client_drop(cl);
                return -ENOMEM;
        }
        log_debug("Certification client %s started.", cl->id);
        return varlink_reply(c, TAKE_PTR(reply));
}

static int cert_test10_stream(VarlinkConnection *c) {
        int r;

        for (unsigned i = 1; i <= CERT_TEST10_REPLIES; i++) {
                json_object *p = json_object_new_object();
                char s[sizeof("Reply number 4294967295")];

                (void) snprintf(s, sizeof(s), "Reply number %u", i);
                if (!p || json_add_string(p, "string", s) < 0) {
                        json_object_put(p);
                        return -ENOMEM;
                }
                /* Both consume p, also on failure. */
                r = i < CERT_TEST10_REPLIES ? varlink_notify(c, p) : varlink_reply(c, p);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int cert_step(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, CertificationStep step) {
        _cleanup_json_ json_object *expected = NULL, *wants = NULL, *reply = NULL;
        const CertificationStepInfo *info = &steps[step];
        const char *client_id = json_get_string(parameters, "client_id");
        CertificationClient *cl;
        uint64_t now;
        int r;

        if (step == CERTIFICATION_STEP_START)
                return cert_start(c, parameters, flags);

        now = now_usec();
        clients_expire(now);
        cl = client_find(client_id);
        if (!cl) {
                /* The id is the peer's string: not logged. */
                log_debug("Certification: %s called with an unknown client id.", info->method);
                return varlink_error(c, CERTIFICATION_ERROR_CLIENT_ID, NULL);
        }
        client_touch(cl, now);

        if (cl->next != step) {
                /* Out of order: the run is over, the client has to Start again. */
                log_debug("Certification client %s called %s, expected %s.", cl->id, info->method,
                          steps[cl->next].method);
                r = call_object(steps[cl->next].method, NULL, steps[cl->next].mode, &wants);
                client_drop(cl);
                if (r < 0)
                        return r;
                return reply_certification_error(c, step, parameters, flags, TAKE_PTR(wants));
        }

        r = expected_parameters(step, cl->id, &expected);
        if (r < 0)
                return r;

        if (flags != info->mode || !cert_json_equal(expected, parameters)) {
                log_debug("Certification client %s: %s called with unexpected %s.", cl->id, info->method,
                          flags != info->mode ? "flags" : "parameters");
                client_drop(cl);
                r = call_object(info->method, TAKE_PTR(expected), info->mode, &wants);
                if (r < 0)
                        return r;
                return reply_certification_error(c, step, parameters, flags, TAKE_PTR(wants));
        }

        if (step == CERTIFICATION_STEP_END) {
                log_debug("Certification client %s passed.", cl->id);
                client_drop(cl);
        } else
                cl->next = step + 1;

        if (step == CERTIFICATION_STEP_TEST10)
                return cert_test10_stream(c);

        r = json_parse_literal(info->reply, &reply);
        if (r < 0)
                return r;
        return varlink_reply(c, TAKE_PTR(reply)); /* Test11 is oneway: this ends the call silently */
}

#define DEFINE_CERT_METHOD(name, step)                                                                  \
        static int vl_cert_##name(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, \
                                  void *userdata) {                                                     \
                return cert_step(c, parameters, flags, step);                                           \
        }

DEFINE_CERT_METHOD(start, CERTIFICATION_STEP_START)
DEFINE_CERT_METHOD(test01, CERTIFICATION_STEP_TEST01)
DEFINE_CERT_METHOD(test02, CERTIFICATION_STEP_TEST02)
DEFINE_CERT_METHOD(test03, CERTIFICATION_STEP_TEST03)
DEFINE_CERT_METHOD(test04, CERTIFICATION_STEP_TEST04)
DEFINE_CERT_METHOD(test05, CERTIFICATION_STEP_TEST05)
DEFINE_CERT_METHOD(test06, CERTIFICATION_STEP_TEST06)
DEFINE_CERT_METHOD(test07, CERTIFICATION_STEP_TEST07)
DEFINE_CERT_METHOD(test08, CERTIFICATION_STEP_TEST08)
DEFINE_CERT_METHOD(test09, CERTIFICATION_STEP_TEST09)
DEFINE_CERT_METHOD(test10, CERTIFICATION_STEP_TEST10)
DEFINE_CERT_METHOD(test11, CERTIFICATION_STEP_TEST11)
DEFINE_CERT_METHOD(end, CERTIFICATION_STEP_END)

/* Types are checked here (→ InvalidParameter, as the reference servers' generated code does), values
 * by cert_step() (→ CertificationError). */
#define CLIENT_ID_FIELD { "client_id", VARLINK_STRING, 0 }

static const VarlinkInterface certification_interface = {
        .name = CERT_INTERFACE,
        .description = varlink_idl_org_varlink_certification,
        .methods = (const VarlinkMethod[]) {
                { "Start", vl_cert_start, (const VarlinkField[]) { { NULL } }, 0 },
                { "Test01", vl_cert_test01, (const VarlinkField[]) { CLIENT_ID_FIELD, { NULL } }, 0 },
                { "Test02", vl_cert_test02,
                  (const VarlinkField[]) { CLIENT_ID_FIELD, { "bool", VARLINK_BOOL, 0 }, { NULL } }, 0 },
                { "Test03", vl_cert_test03,
                  (const VarlinkField[]) { CLIENT_ID_FIELD, { "int", VARLINK_INT, 0 }, { NULL } }, 0 },
                { "Test04", vl_cert_test04,
                  (const VarlinkField[]) { CLIENT_ID_FIELD, { "float", VARLINK_FLOAT, 0 }, { NULL } }, 0 },
                { "Test05", vl_cert_test05,
                  (const VarlinkField[]) { CLIENT_ID_FIELD, { "string", VARLINK_STRING, 0 }, { NULL } }, 0 },
                { "Test06", vl_cert_test06,
                  (const VarlinkField[]) {
                          CLIENT_ID_FIELD,
                          { "bool", VARLINK_BOOL, 0 },
                          { "int", VARLINK_INT, 0 },
                          { "float", VARLINK_FLOAT, 0 },
                          { "string", VARLINK_STRING, 0 },
                          { NULL },
                  }, 0 },
                { "Test07", vl_cert_test07,
                  (const VarlinkField[]) { CLIENT_ID_FIELD, { "struct", VARLINK_OBJECT, 0 }, { NULL } }, 0 },
                { "Test08", vl_cert_test08,
                  (const VarlinkField[]) { CLIENT_ID_FIELD, { "map", VARLINK_OBJECT, 0 }, { NULL } }, 0 },
                { "Test09", vl_cert_test09,
                  (const VarlinkField[]) { CLIENT_ID_FIELD, { "set", VARLINK_OBJECT, 0 }, { NULL } }, 0 },
                { "Test10", vl_cert_test10,
                  (const VarlinkField[]) { CLIENT_ID_FIELD, { "mytype", VARLINK_OBJECT, 0 }, { NULL } }, 0 },
                { "Test11", vl_cert_test11,
                  (const VarlinkField[]) { CLIENT_ID_FIELD, { "last_more_replies", VARLINK_ARRAY, 0 }, { NULL } },
                  0 },
                { "End", vl_cert_end, (const VarlinkField[]) { CLIENT_ID_FIELD, { NULL } }, 0 },
                { NULL },
        },
};

int certification_register(VarlinkServer *s) {
        return varlink_server_add_interface(s, &certification_interface);
}
