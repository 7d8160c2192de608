/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <event-parse.h>
#include <tracefs.h>

#include "basic/fileio.h"
#include "basic/parse.h"
#include "basic/strv.h"
#include "trace/trace-format.h"

/* The parse runs in a child process (parse_isolated()): libtraceevent 1.7 (Debian 12) dereferences NULL on some
 * malformed print fmts, and keeps a little state in globals (arg_eval's buffer, is_symbolic_field). A kernel
 * never writes such a format, but a crash of the library must not be the daemon's. What comes back through the
 * pipe is at most this much. */
#define PARSE_REPLY_MAX (TRACE_FORMAT_SIZE_MAX + TRACE_SYMBOLS_MAX * 16U + 4096U)

/* Nesting of the print fmt's argument tree that we follow; the kernel's deepest is < 10. */
#define ARG_DEPTH_MAX 64

static const char *const trace_kvm_isa_table[] = {
        [TRACE_KVM_ISA_VMX] = "vmx",
        [TRACE_KVM_ISA_SVM] = "svm",
};

const char *trace_kvm_isa_to_string(TraceKvmIsa isa) {
        if ((int) isa < 0 || (size_t) isa >= ELEMENTSOF(trace_kvm_isa_table))
                return NULL;
        return trace_kvm_isa_table[isa];
}

static int set_reason(char **ret_reason, const char *fmt, ...) _printf_(2, 3);
static int set_reason(char **ret_reason, const char *fmt, ...) {
        va_list ap;
        char *s;
        int r;

        if (!ret_reason)
                return 0;
        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        free(*ret_reason);
        *ret_reason = s;
        return 0;
}

void trace_symbols_free(TraceSymbol *s, size_t n) {
        if (!s)
                return;
        for (size_t i = 0; i < n; i++)
                free(s[i].name);
        free(s);
}

int trace_find_tracing_dir(const char *root, char **ret_dir, char **ret_reason) {
        static const char *const dirs[] = { "sys/kernel/tracing", "sys/kernel/debug/tracing" };
        int r;

        if (!root || !ret_dir)
                return -EINVAL;

        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                _cleanup_free_ char *dir = path_join(root, dirs[i]), *events = NULL;
                struct stat st;

                if (!dir)
                        return -ENOMEM;
                events = path_join(dir, "events");
                if (!events)
                        return -ENOMEM;
                if (stat(events, &st) < 0) {
                        if (errno == ENOENT || errno == ENOTDIR)
                                continue;
                        r = -errno;
                        if (set_reason(ret_reason, "cannot look at %s: %s", events, strerror(-r)) < 0)
                                return -ENOMEM;
                        return r;
                }
                if (!S_ISDIR(st.st_mode))
                        continue;
                *ret_dir = TAKE_PTR(dir);
                return 0;
        }
        if (set_reason(ret_reason, "tracefs is not mounted at /%s (nor at /%s)", dirs[0], dirs[1]) < 0)
                return -ENOMEM;
        return -ENOENT;
}

bool trace_name_is_valid(const char *name) {
        if (isempty(name) || streq(name, ".") || streq(name, "..") || strlen(name) > 255)
                return false;
        for (const char *p = name; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      *p == '_' || *p == '-' || *p == '.'))
                        return false;
        return true;
}

static int event_file(const char *tracing_dir, const char *system, const char *event, const char *file,
                      char **ret) {
        if (!tracing_dir || !trace_name_is_valid(system) || !trace_name_is_valid(event))
                return -EINVAL;
        if (asprintf(ret, "%s/events/%s/%s/%s", tracing_dir, system, event, file) < 0)
                return -ENOMEM;
        return 0;
}

int trace_event_id(const char *tracing_dir, const char *system, const char *event, uint64_t *ret) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        int r;

        r = event_file(tracing_dir, system, event, "id", &path);
        if (r < 0)
                return r;
        r = read_full_file(path, 64, &text, NULL);
        if (r == -ENOTDIR)
                return -ENOENT;
        if (r < 0)
                return r;
        text[strcspn(text, "\n")] = 0;
        return parse_uint64(text, ret);
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static int list_system(const char *tracing_dir, const char *system, char ***list) {
        char **events;
        int r = 0;

        events = tracefs_system_events(tracing_dir, system);
        if (!events)
                return 0;
        for (char **e = events; *e; e++) {
                r = strv_extendf(list, "%s:%s", system, *e);
                if (r < 0)
                        break;
        }
        tracefs_list_free(events);
        return r;
}

int trace_list_events(const char *tracing_dir, const char *system, char ***ret) {
        _cleanup_(strv_freep) char **list = NULL;
        int r;

        if (!tracing_dir || !ret || (system && !trace_name_is_valid(system)))
                return -EINVAL;

        if (system)
                r = list_system(tracing_dir, system, &list);
        else {
                char **systems = tracefs_event_systems(tracing_dir);

                r = 0;
                for (char **s = systems; s && *s && r >= 0; s++)
                        r = list_system(tracing_dir, *s, &list);
                tracefs_list_free(systems);
        }
        if (r < 0)
                return r;
        if (!list)
                return -ENOENT;
        qsort(list, strv_length(list), sizeof(char *), cmp_str);
        *ret = TAKE_PTR(list);
        return 0;
}

/* Does the expression read the field? (REC->exit_reason, REC->exit_reason & 0xffff, a cast of it, …) */
static bool arg_uses_field(const struct tep_print_arg *a, const char *field, unsigned depth) {
        if (!a || depth > ARG_DEPTH_MAX)
                return false;
        switch (a->type) {
        case TEP_PRINT_FIELD:
                return a->field.name && streq(a->field.name, field);
        case TEP_PRINT_OP:
                return arg_uses_field(a->op.left, field, depth + 1) || arg_uses_field(a->op.right, field, depth + 1);
        case TEP_PRINT_TYPE:
                return arg_uses_field(a->typecast.item, field, depth + 1);
        case TEP_PRINT_NULL:
        case TEP_PRINT_ATOM:
        case TEP_PRINT_FLAGS:
        case TEP_PRINT_SYMBOL:
        case TEP_PRINT_HEX:
        case TEP_PRINT_INT_ARRAY:
        case TEP_PRINT_STRING:
        case TEP_PRINT_BSTRING:
        case TEP_PRINT_DYNAMIC_ARRAY:
        case TEP_PRINT_FUNC:
        case TEP_PRINT_BITMASK:
        case TEP_PRINT_DYNAMIC_ARRAY_LEN:
        case TEP_PRINT_HEX_STR:
        case TEP_PRINT_CPUMASK:
        default:
                return false;
        }
}

/* `REC->isa == N` (either way round) → N. */
static bool arg_isa_condition(const struct tep_print_arg *a, long long *ret) {
        const struct tep_print_arg *f, *n;
        char *end;

        if (!a || a->type != TEP_PRINT_OP || !a->op.op || !streq(a->op.op, "=="))
                return false;
        f = a->op.left;
        n = a->op.right;
        if (f && f->type == TEP_PRINT_ATOM) {
                f = a->op.right;
                n = a->op.left;
        }
        if (!f || !n || f->type != TEP_PRINT_FIELD || !f->field.name || !streq(f->field.name, "isa") ||
            n->type != TEP_PRINT_ATOM || !n->atom.atom)
                return false;
        errno = 0;
        *ret = strtoll(n->atom.atom, &end, 0);
        return errno == 0 && end != n->atom.atom && *end == 0;
}

typedef struct TableSearch {
        TraceKvmIsa isa;
        const struct tep_print_arg *table;
        int table_match;        /* 1: under `isa == ISA`, 0: under no isa condition */
        unsigned n_tables;      /* tables of exit_reason seen, for the reason */
} TableSearch;

/* match: 1 under a condition that selects our isa, -1 under one that excludes it, 0 under none. The kernel has
 * two ISAs (KVM_ISA_VMX, KVM_ISA_SVM): the false branch of `isa == OTHER` is ours. */
static void find_table(const struct tep_print_arg *a, int match, TableSearch *s, unsigned depth) {
        long long k;

        if (!a || depth > ARG_DEPTH_MAX)
                return;
        switch (a->type) {
        case TEP_PRINT_SYMBOL:
                if (!arg_uses_field(a->symbol.field, "exit_reason", 0))
                        return;
                s->n_tables++;
                if (match >= 0 && (!s->table || match > s->table_match)) {
                        s->table = a;
                        s->table_match = match;
                }
                return;
        case TEP_PRINT_OP:
                if (a->op.op && streq(a->op.op, "?") && a->op.right && a->op.right->type == TEP_PRINT_OP &&
                    a->op.right->op.op && streq(a->op.right->op.op, ":") && arg_isa_condition(a->op.left, &k)) {
                        bool ours = k == (long long) s->isa;

                        find_table(a->op.right->op.left, match < 0 ? -1 : ours ? 1 : -1, s, depth + 1);
                        find_table(a->op.right->op.right, match < 0 ? -1 : ours ? -1 : 1, s, depth + 1);
                        return;
                }
                find_table(a->op.left, match, s, depth + 1);
                find_table(a->op.right, match, s, depth + 1);
                return;
        case TEP_PRINT_TYPE:
                find_table(a->typecast.item, match, s, depth + 1);
                return;
        case TEP_PRINT_FUNC: {
                unsigned n = 0;
                for (const struct tep_print_arg *i = a->func.args; i && n < 64; i = i->next, n++)
                        find_table(i, match, s, depth + 1);
                return;
        }
        case TEP_PRINT_NULL:
        case TEP_PRINT_ATOM:
        case TEP_PRINT_FIELD:
        case TEP_PRINT_FLAGS:
        case TEP_PRINT_HEX:
        case TEP_PRINT_INT_ARRAY:
        case TEP_PRINT_STRING:
        case TEP_PRINT_BSTRING:
        case TEP_PRINT_DYNAMIC_ARRAY:
        case TEP_PRINT_BITMASK:
        case TEP_PRINT_DYNAMIC_ARRAY_LEN:
        case TEP_PRINT_HEX_STR:
        case TEP_PRINT_CPUMASK:
        default:
                return;
        }
}

/* A table value as libtraceevent evaluated it ("0x400", "64", "-1") → the field's value (field_size bytes). */
static int parse_symbol_value(const char *s, unsigned field_size, uint64_t *ret) {
        bool negative = false;
        unsigned long long v;
        char *end;

        if (isempty(s))
                return -EINVAL;
        if (*s == '-') {
                negative = true;
                s++;
        }
        if (*s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 0);
        if (errno != 0 || *end != 0)
                return -EINVAL;
        if (negative)
                v = -v;
        if (field_size > 0 && field_size < 8)
                v &= (UINT64_C(1) << (field_size * 8)) - 1;
        *ret = v;
        return 0;
}

static int cmp_symbol(const void *a, const void *b) {
        const TraceSymbol *x = a, *y = b;
        return x->value < y->value ? -1 : x->value > y->value;
}

static int symbols_from_table(const struct tep_print_arg *table, unsigned field_size, TraceSymbol **ret,
                              size_t *ret_n, char **ret_reason) {
        TraceSymbol *symbols = NULL;
        size_t n = 0, k = 0;
        int r;

        for (const struct tep_print_flag_sym *f = table->symbol.symbols; f; f = f->next)
                if (++n > TRACE_SYMBOLS_MAX) {
                        (void) set_reason(ret_reason, "the exit reason table has more than %u entries",
                                          TRACE_SYMBOLS_MAX);
                        return -EBADMSG;
                }
        if (n == 0) {
                (void) set_reason(ret_reason, "the exit reason table is empty");
                return -EBADMSG;
        }
        symbols = calloc(n, sizeof(TraceSymbol));
        if (!symbols)
                return -ENOMEM;
        for (const struct tep_print_flag_sym *f = table->symbol.symbols; f; f = f->next, k++) {
                r = parse_symbol_value(f->value, field_size, &symbols[k].value);
                if (r < 0 || isempty(f->str)) {
                        r = set_reason(ret_reason, "the exit reason table has an entry that is not {number, "
                                       "\"name\"}: {%s, \"%s\"}", strna(f->value), strna(f->str));
                        trace_symbols_free(symbols, k);
                        return r < 0 ? r : -EBADMSG;
                }
                symbols[k].name = strdup(f->str);
                if (!symbols[k].name) {
                        trace_symbols_free(symbols, k);
                        return -ENOMEM;
                }
        }
        /* Sorted by value; a value listed twice keeps its first name (counting it twice would make the sum of
         * the reasons exceed the total). qsort is not stable: restore first-wins by a stable pass below. */
        for (size_t i = 1; i < n; i++) {        /* insertion sort: stable, n ≤ TRACE_SYMBOLS_MAX */
                TraceSymbol t = symbols[i];
                size_t j = i;
                while (j > 0 && cmp_symbol(&symbols[j - 1], &t) > 0) {
                        symbols[j] = symbols[j - 1];
                        j--;
                }
                symbols[j] = t;
        }
        k = 0;
        for (size_t i = 0; i < n; i++) {
                if (k > 0 && symbols[k - 1].value == symbols[i].value) {
                        free(symbols[i].name);
                        continue;
                }
                symbols[k++] = symbols[i];
        }
        *ret = symbols;
        *ret_n = k;
        return 0;
}

/* libtraceevent 1.7 (Debian 12) dereferences NULL on some malformed print fmts (a truncated one, with an
 * unclosed bracket); later versions fix several such paths. A kernel never writes one, but a format that is
 * not balanced is refused here, before the parser sees it: every "print fmt:" line must close its ( and { in
 * order, outside string literals, and close its strings. */
static bool print_fmt_is_balanced(const char *text, size_t size) {
        const char *p = memmem(text, size, "\nprint fmt:", 11);
        char stack[ARG_DEPTH_MAX];
        size_t depth = 0;
        bool in_string = false;

        if (!p)
                return true;    /* no print fmt: libtraceevent refuses it by itself */
        for (p += 11; p < text + size && *p != '\n'; p++) {
                if (in_string) {
                        if (*p == '\\' && p + 1 < text + size && p[1] != '\n')
                                p++;
                        else if (*p == '"')
                                in_string = false;
                        continue;
                }
                switch (*p) {
                case '"':
                        in_string = true;
                        break;
                case '(':
                case '{':
                        if (depth >= ELEMENTSOF(stack))
                                return false;
                        stack[depth++] = *p == '(' ? ')' : '}';
                        break;
                case ')':
                case '}':
                        if (depth == 0 || stack[--depth] != *p)
                                return false;
                        break;
                default:
                        break;
                }
        }
        return !in_string && depth == 0;
}

/* The parse proper, on a NUL-terminated text of size bytes. */
static int parse_in_process(const char *text, size_t size, TraceKvmIsa isa, TraceSymbol **ret, size_t *ret_n,
                            char **ret_reason) {
        struct tep_handle *tep;
        struct tep_event *event = NULL;
        struct tep_format_field *field;
        TableSearch search = { .isa = isa };
        enum tep_errno e;
        char buf[256];
        int r;

        tep = tep_alloc();
        if (!tep) {
                r = -ENOMEM;
                goto finish;
        }
        e = tep_parse_format(tep, &event, text, size, "kvm");
        if (e != 0 || !event) {
                if (tep_strerror(tep, e, buf, sizeof(buf)) < 0)
                        snprintf(buf, sizeof(buf), "error %d", (int) e);
                /* libtraceevent says "failed to allocate memory" for much that is only malformed (an empty
                 * name, an empty file): a bad format either way. */
                r = set_reason(ret_reason, "the format of kvm:kvm_exit does not parse: %s", buf);
                r = r < 0 ? r : -EBADMSG;
                goto finish;
        }
        if (!event->name || !streq(event->name, "kvm_exit")) {
                r = set_reason(ret_reason, "the format is that of %s, not of kvm:kvm_exit", strna(event->name));
                r = r < 0 ? r : -EBADMSG;
                goto finish;
        }
        field = tep_find_field(event, "exit_reason");
        if (!field || field->size <= 0 || field->size > 8) {
                r = set_reason(ret_reason, "the format of kvm:kvm_exit has no numeric field exit_reason");
                r = r < 0 ? r : -EBADMSG;
                goto finish;
        }
        for (const struct tep_print_arg *a = event->print_fmt.args; a; a = a->next)
                find_table(a, 0, &search, 0);
        if (!search.table) {
                r = set_reason(ret_reason, "the print fmt of kvm:kvm_exit has no __print_symbolic table of "
                               "exit_reason for %s (%u table(s) for other ISAs)",
                               trace_kvm_isa_to_string(isa), search.n_tables);
                r = r < 0 ? r : -EBADMSG;
                goto finish;
        }
        r = symbols_from_table(search.table, (unsigned) field->size, ret, ret_n, ret_reason);
finish:
        if (tep)
                tep_free(tep);
        return r;
}

static int write_all(int fd, const void *p, size_t n) {
        const uint8_t *b = p;

        while (n > 0) {
                ssize_t k = write(fd, b, n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return -errno;
                b += k;
                n -= (size_t) k;
        }
        return 0;
}

/* The child: parse, then write to fd: int32 r; r ≥ 0: uint64 n, then n × (uint64 value, uint32 length, name);
 * r < 0: uint32 length, reason. */
_noreturn_ static void parse_child(int fd, const char *text, size_t size, TraceKvmIsa isa) {
        TraceSymbol *s = NULL;
        char *reason = NULL;
        size_t n = 0;
        int32_t r;
        uint32_t l;

        /* A crash of the library is a crash of this child, reported by its signal: no handler (a fuzzer's, a
         * sanitizer's) of the parent's is to treat it as the parent's. */
        (void) signal(SIGSEGV, SIG_DFL);
        (void) signal(SIGBUS, SIG_DFL);
        (void) signal(SIGFPE, SIG_DFL);
        (void) signal(SIGILL, SIG_DFL);
        (void) signal(SIGABRT, SIG_DFL);
        r = parse_in_process(text, size, isa, &s, &n, &reason);
        if (write_all(fd, &r, sizeof(r)) < 0)
                _exit(EXIT_FAILURE);
        if (r >= 0) {
                uint64_t n64 = n;
                if (write_all(fd, &n64, sizeof(n64)) < 0)
                        _exit(EXIT_FAILURE);
                for (size_t i = 0; i < n; i++) {
                        l = (uint32_t) strlen(s[i].name);
                        if (write_all(fd, &s[i].value, sizeof(uint64_t)) < 0 || write_all(fd, &l, sizeof(l)) < 0 ||
                            write_all(fd, s[i].name, l) < 0)
                                _exit(EXIT_FAILURE);
                }
        } else {
                l = reason ? (uint32_t) strlen(reason) : 0;
                if (write_all(fd, &l, sizeof(l)) < 0 || write_all(fd, strempty(reason), l) < 0)
                        _exit(EXIT_FAILURE);
        }
        _exit(EXIT_SUCCESS);
}

typedef struct Reply {
        const uint8_t *p;
        size_t left;
} Reply;

static bool reply_take(Reply *r, void *dst, size_t n) {
        if (r->left < n)
                return false;
        memcpy(dst, r->p, n);
        r->p += n;
        r->left -= n;
        return true;
}

static char *reply_string(Reply *r) {
        uint32_t l;
        char *s;

        if (!reply_take(r, &l, sizeof(l)) || l > r->left)
                return NULL;
        s = strndup((const char *) r->p, l);
        r->p += l;
        r->left -= l;
        return s;
}

static int decode_reply(const uint8_t *buf, size_t size, TraceSymbol **ret, size_t *ret_n, char **ret_reason) {
        Reply reply = { buf, size };
        TraceSymbol *s;
        uint64_t n;
        int32_t r;

        if (!reply_take(&reply, &r, sizeof(r)))
                return -EIO;
        if (r < 0) {
                char *reason = reply_string(&reply);
                if (!reason)
                        return -EIO;
                if (ret_reason && *reason) {
                        free(*ret_reason);
                        *ret_reason = reason;
                } else
                        free(reason);
                return r;
        }
        if (!reply_take(&reply, &n, sizeof(n)) || n == 0 || n > TRACE_SYMBOLS_MAX)
                return -EIO;
        s = calloc(n, sizeof(TraceSymbol));
        if (!s)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (!reply_take(&reply, &s[i].value, sizeof(uint64_t)) || !(s[i].name = reply_string(&reply))) {
                        trace_symbols_free(s, i);
                        return -EIO;
                }
        *ret = s;
        *ret_n = n;
        return 0;
}

/* Runs parse_in_process() in a child and takes its result through a pipe. Blocks until the child is done. */
static int parse_isolated(const char *text, size_t size, TraceKvmIsa isa, TraceSymbol **ret, size_t *ret_n,
                          char **ret_reason) {
        _cleanup_close_ int rfd = -EBADF, wfd = -EBADF;
        _cleanup_free_ uint8_t *buf = NULL;
        size_t used = 0, allocated = 0;
        int fds[2], status, r = 0;
        pid_t pid;

        if (pipe2(fds, O_CLOEXEC) < 0)
                return -errno;
        rfd = fds[0];
        wfd = fds[1];
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                rfd = safe_close(rfd);
                parse_child(wfd, text, size, isa);
        }
        wfd = safe_close(wfd);

        for (;;) {
                ssize_t k;

                if (used == allocated) {
                        uint8_t *t;
                        if (allocated >= PARSE_REPLY_MAX) {
                                r = -EFBIG;
                                break;
                        }
                        allocated = MIN(MAX(allocated * 2, (size_t) 4096), (size_t) PARSE_REPLY_MAX);
                        t = realloc(buf, allocated);
                        if (!t) {
                                r = -ENOMEM;
                                break;
                        }
                        buf = t;
                }
                k = read(rfd, buf + used, allocated - used);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        r = -errno;
                        break;
                }
                if (k == 0)
                        break;
                used += (size_t) k;
        }
        rfd = safe_close(rfd);  /* a child still writing gets SIGPIPE */
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        if (r < 0)
                return r;
        if (WIFSIGNALED(status)) {
                (void) set_reason(ret_reason, "libtraceevent failed on the format of kvm:kvm_exit (killed by "
                                  "signal %s)", strsignal(WTERMSIG(status)));
                return -EBADMSG;
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != EXIT_SUCCESS) {
                /* (a sanitizer reports a crash this way) */
                (void) set_reason(ret_reason, "libtraceevent failed on the format of kvm:kvm_exit (exit status %i)",
                                  WIFEXITED(status) ? WEXITSTATUS(status) : -1);
                return -EBADMSG;
        }
        return decode_reply(buf, used, ret, ret_n, ret_reason);
}

int trace_kvm_exit_reasons_from_format(const char *text, size_t size, TraceKvmIsa isa, TraceSymbol **ret,
                                       size_t *ret_n, char **ret_reason) {
        _cleanup_free_ char *copy = NULL;

        if (!text || !ret || !ret_n || !trace_kvm_isa_to_string(isa))
                return -EINVAL;
        if (size > TRACE_FORMAT_SIZE_MAX) {
                (void) set_reason(ret_reason, "the format of kvm:kvm_exit is larger than %u bytes",
                                  TRACE_FORMAT_SIZE_MAX);
                return -EFBIG;
        }
        if (size == 0) {
                (void) set_reason(ret_reason, "the format of kvm:kvm_exit is empty");
                return -EBADMSG;
        }
        if (!print_fmt_is_balanced(text, size)) {
                (void) set_reason(ret_reason, "the print fmt of kvm:kvm_exit is cut short or has unbalanced "
                                  "brackets or quotes");
                return -EBADMSG;
        }
        /* libtraceevent gets a NUL-terminated copy whatever the caller passed */
        copy = malloc(size + 1);
        if (!copy)
                return -ENOMEM;
        memcpy(copy, text, size);
        copy[size] = 0;
        return parse_isolated(copy, size, isa, ret, ret_n, ret_reason);
}

int trace_kvm_exit_reasons(const char *tracing_dir, TraceKvmIsa isa, TraceSymbol **ret, size_t *ret_n,
                           char **ret_reason) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        size_t size;
        int r;

        r = event_file(tracing_dir, "kvm", "kvm_exit", "format", &path);
        if (r < 0)
                return r;
        r = read_full_file(path, TRACE_FORMAT_SIZE_MAX, &text, &size);
        if (r == -ENOENT || r == -ENOTDIR) {
                (void) set_reason(ret_reason, "the kernel has no tracepoint kvm:kvm_exit (%s is missing: kvm "
                                  "module not loaded?)", path);
                return -ENOENT;
        }
        if (r < 0) {
                (void) set_reason(ret_reason, "cannot read %s: %s", path, strerror(-r));
                return r;
        }
        return trace_kvm_exit_reasons_from_format(text, size, isa, ret, ret_n, ret_reason);
}

int trace_kvm_isa(const char *root, TraceKvmIsa *ret) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        int r;

        if (!root || !ret)
                return -EINVAL;
        path = path_join(root, "proc/cpuinfo");
        if (!path)
                return -ENOMEM;
        r = read_full_file(path, 64U * 1024U * 1024U, &text, NULL);
        if (r < 0)
                return r;
        for (char *line = text; line && *line; ) {
                char *next = strchr(line, '\n');
                const char *v;

                if (next)
                        *next++ = 0;
                v = startswith(line, "vendor_id");
                if (v) {
                        v += strspn(v, " \t");
                        if (*v == ':') {
                                v++;
                                v += strspn(v, " \t");
                                if (streq(v, "GenuineIntel"))
                                        *ret = TRACE_KVM_ISA_VMX;
                                else if (streq(v, "AuthenticAMD") || streq(v, "HygonGenuine"))
                                        *ret = TRACE_KVM_ISA_SVM;
                                else
                                        return -EOPNOTSUPP;
                                return 0;
                        }
                }
                line = next;
        }
        return -ENOENT;
}
