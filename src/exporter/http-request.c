/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <strings.h>

#include "exporter/http-request.h"

static const char *const http_method_table[_HTTP_METHOD_MAX] = {
        [HTTP_GET] = "GET",
        [HTTP_HEAD] = "HEAD",
        [HTTP_POST] = "POST",
        [HTTP_PUT] = "PUT",
        [HTTP_DELETE] = "DELETE",
        [HTTP_CONNECT] = "CONNECT",
        [HTTP_OPTIONS] = "OPTIONS",
        [HTTP_TRACE] = "TRACE",
        [HTTP_PATCH] = "PATCH",
};

DEFINE_STRING_TABLE(http_method, HttpMethod, _HTTP_METHOD_MAX);

const char *http_status_reason(int code) {
        switch (code) {
        case 200: return "OK";
        case 400: return "Bad Request";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 408: return "Request Timeout";
        case 414: return "URI Too Long";
        case 431: return "Request Header Fields Too Large";
        case 500: return "Internal Server Error";
        case 501: return "Not Implemented";
        case 503: return "Service Unavailable";
        case 505: return "HTTP Version Not Supported";
        }
        return "Unknown";
}

/* RFC 9110 tchar */
static bool is_tchar(char c) {
        return isalnum((unsigned char) c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Finds the end of the line starting at p: returns the position of CR (followed by LF), NULL when the
 * line is not complete yet, or sets *bad on a bare LF or a CR not followed by LF. */
static const char *line_end(const char *p, const char *end, bool *bad) {
        for (const char *q = p; q < end; q++) {
                if (*q == '\n') {
                        *bad = true;
                        return NULL;
                }
                if (*q == '\r') {
                        if (q + 1 == end)
                                return NULL;
                        if (q[1] != '\n') {
                                *bad = true;
                                return NULL;
                        }
                        return q;
                }
        }
        return NULL;
}

static bool token_list_contains(const char *v, size_t l, const char *word) {
        size_t wl = strlen(word);

        for (size_t i = 0; i < l;) {
                size_t s, e;

                while (i < l && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
                        i++;
                s = i;
                while (i < l && v[i] != ',')
                        i++;
                e = i;
                while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
                        e--;
                if (e - s == wl && strncasecmp(v + s, word, wl) == 0)
                        return true;
        }
        return false;
}

static bool is_hex(char c) {
        return isxdigit((unsigned char) c);
}

/* RFC 3986 unreserved / sub-delims, as allowed in a reg-name */
static bool is_reg_name_char(char c) {
        return isalnum((unsigned char) c) || (c && strchr("-._~!$&'()*+,;=", c));
}

/* The absolute-form of a request target (RFC 9112 3.2.2): "http://" authority, then path-abempty and the
 * query. The scheme is case-insensitive; the authority is a host (a reg-name, IPv4 address or bracketed IP
 * literal, not empty, RFC 9110 4.2.1) and an optional port, without userinfo (4.2.4). Returns how many bytes
 * of t the scheme and authority take, or 0 when t is not such a target. The host is not used: like the Host
 * header, it names this server however the client reached it. */
static size_t absolute_form_prefix(const char *t, size_t l) {
        size_t i = 7, host;

        if (l < 7 || strncasecmp(t, "http://", 7) != 0)
                return 0;
        host = i;
        if (i < l && t[i] == '[') {
                for (i++; i < l && (is_hex(t[i]) || t[i] == ':' || t[i] == '.'); i++)
                        ;
                if (i >= l || t[i] != ']' || i == host + 1)
                        return 0;
                i++;
        } else
                for (; i < l && t[i] != ':' && t[i] != '/' && t[i] != '?'; i++) {
                        if (t[i] == '%') {
                                if (i + 2 >= l || !is_hex(t[i + 1]) || !is_hex(t[i + 2]))
                                        return 0;
                                i += 2;
                        } else if (!is_reg_name_char(t[i]))
                                return 0;       /* '@' of userinfo among others */
                }
        if (i == host)
                return 0;
        if (i < l && t[i] == ':')
                for (i++; i < l && t[i] != '/' && t[i] != '?'; i++)
                        if (!isdigit((unsigned char) t[i]))
                                return 0;
        if (i < l && t[i] != '/' && t[i] != '?')
                return 0;
        return i;
}

static int parse_request_line(const char *p, const char *eol, HttpRequest *req) {
        const char *sp1, *sp2, *target, *version;
        size_t ml, tl;
        char method[16];

        for (const char *q = p; q < eol; q++)
                if ((unsigned char) *q < 0x20 || *q == 0x7f)
                        return -400;

        sp1 = memchr(p, ' ', (size_t) (eol - p));
        if (!sp1 || sp1 == p)
                return -400;
        ml = (size_t) (sp1 - p);
        for (const char *q = p; q < sp1; q++)
                if (!is_tchar(*q))
                        return -400;
        target = sp1 + 1;
        sp2 = memchr(target, ' ', (size_t) (eol - target));
        if (!sp2 || sp2 == target)
                return -400;
        version = sp2 + 1;
        if (memchr(version, ' ', (size_t) (eol - version)))
                return -400;

        /* Version: HTTP/1.0 or HTTP/1.1; another well-formed version → 505. */
        if (eol - version != 8 || memcmp(version, "HTTP/", 5) != 0 || !isdigit((unsigned char) version[5]) ||
            version[6] != '.' || !isdigit((unsigned char) version[7]))
                return -400;
        if (version[5] != '1' || (version[7] != '0' && version[7] != '1'))
                return -505;
        req->version_minor = (unsigned) (version[7] - '0');
        req->keep_alive = req->version_minor == 1;

        if (ml >= sizeof(method))
                return -501;
        memcpy(method, p, ml);
        method[ml] = 0;
        req->method = http_method_from_string(method);
        if (req->method < 0)
                return -501;

        /* origin-form ("/path?query") or absolute-form ("http://host[:port][/path][?query]"); no fragments,
         * no asterisk-form or authority-form. */
        tl = (size_t) (sp2 - target);
        if (target[0] != '/') {
                size_t skip = absolute_form_prefix(target, tl);

                if (skip == 0)
                        return -400;
                target += skip;
                tl -= skip;
        }
        for (size_t i = 0; i < tl; i++) {
                unsigned char c = (unsigned char) target[i];
                if (c >= 0x80 || c == '#' || c == '"' || c == '<' || c == '>' || c == '\\' || c == '^' ||
                    c == '`' || c == '{' || c == '|' || c == '}')
                        return -400;
        }
        const char *qm = memchr(target, '?', tl);
        if (qm)
                tl = (size_t) (qm - target);
        if (tl == 0)    /* absolute-form, empty path: "/" (RFC 9110 4.2.3) */
                strcpy(req->path, "/");
        else {
                memcpy(req->path, target, tl);
                req->path[tl] = 0;
        }
        return 0;
}

int http_request_parse(const char *buf, size_t size, HttpRequest *ret) {
        const char *end = buf + size, *p = buf, *eol;
        HttpRequest req = {};
        unsigned n_host = 0;
        bool bad = false;
        int r;

        /* Request line */
        eol = line_end(p, end, &bad);
        if (bad)
                return -400;
        if (!eol)
                return size > HTTP_MAX_REQUEST_LINE ? -414 : 0;
        if ((size_t) (eol - p) > HTTP_MAX_REQUEST_LINE)
                return -414;
        r = parse_request_line(p, eol, &req);
        if (r < 0)
                return r;
        p = eol + 2;

        const char *headers = p;
        for (;;) {
                const char *colon, *v, *ve;
                size_t nl;

                eol = line_end(p, end, &bad);
                if (bad)
                        return -400;
                if (!eol)
                        return (size_t) (end - headers) > HTTP_MAX_HEADER_SIZE ? -431 : 0;
                if ((size_t) (eol + 2 - headers) > HTTP_MAX_HEADER_SIZE)
                        return -431;
                if (eol == p) {         /* empty line: end of the head */
                        p = eol + 2;
                        break;
                }
                if (req.n_headers >= HTTP_MAX_HEADERS)
                        return -431;
                if (*p == ' ' || *p == '\t')    /* obs-fold */
                        return -400;

                colon = memchr(p, ':', (size_t) (eol - p));
                if (!colon || colon == p)
                        return -400;
                for (const char *q = p; q < colon; q++)
                        if (!is_tchar(*q))      /* also rejects whitespace before the colon */
                                return -400;
                nl = (size_t) (colon - p);
                v = colon + 1;
                while (v < eol && (*v == ' ' || *v == '\t'))
                        v++;
                ve = eol;
                while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                        ve--;
                for (const char *q = v; q < ve; q++)
                        if (((unsigned char) *q < 0x20 && *q != '\t') || *q == 0x7f)
                                return -400;

                if (nl == 4 && strncasecmp(p, "Host", 4) == 0)
                        n_host++;
                else if (nl == 14 && strncasecmp(p, "Content-Length", 14) == 0) {
                        if (ve == v)
                                return -400;
                        for (const char *q = v; q < ve; q++)
                                if (*q != '0')          /* digits other than 0, or not a number */
                                        return -400;
                } else if (nl == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0)
                        return -400;
                else if (nl == 10 && strncasecmp(p, "Connection", 10) == 0) {
                        if (token_list_contains(v, (size_t) (ve - v), "close"))
                                req.keep_alive = false;
                        else if (token_list_contains(v, (size_t) (ve - v), "keep-alive"))
                                req.keep_alive = true;
                }

                req.n_headers++;
                p = eol + 2;
        }

        if (n_host > 1 || (req.version_minor == 1 && n_host == 0))
                return -400;

        *ret = req;
        return (int) (p - buf);
}
