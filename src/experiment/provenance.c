/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/kvm.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "basic/fileio.h"
#include "basic/parse.h"
#include "basic/utf8.h"
#include "build-config.h"
#include "experiment/provenance.h"

/* Size bounds of what is read: one-line sysfs and procfs values, the kernel command line, and
 * /proc/cpuinfo (about 1.5 KiB per CPU: 16 MiB is more than 8,000 CPUs). */
#define VALUE_FILE_MAX (4U * 1024U)
#define CMDLINE_MAX (64U * 1024U)
#define CPUINFO_MAX (16U * 1024U * 1024U)
#define QEMU_VERSION_MAX (4U * 1024U)

extern char **environ;

DEFINE_TRIVIAL_CLEANUP_FUNC_VOID(DIR *, closedir);

static int reason_set(char **reason, const char *fmt, ...) _printf_(2, 3);
static int reason_set(char **reason, const char *fmt, ...) {
        va_list ap;
        char *s;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        free(*reason);
        *reason = s;
        return 0;
}

/* "/REL: strerror" (REL below the root, shown as the host path it stands for). */
static int reason_errno(char **reason, const char *rel, int error) {
        char buf[128];

        return reason_set(reason, "/%s: %s", rel, strerror_r(-error, buf, sizeof(buf)));
}

static void text_done(ProvenanceText *t) {
        t->value = mfree(t->value);
        t->unavailable = mfree(t->unavailable);
}

static int text_set(ProvenanceText *t, const char *value) {
        char *v = strdup(value);

        if (!v)
                return -ENOMEM;
        text_done(t);
        t->value = v;
        return 0;
}

static void module_done(ProvenanceModule *m) {
        for (size_t i = 0; i < m->n_parameters; i++) {
                free(m->parameters[i].name);
                text_done(&m->parameters[i].value);
        }
        m->parameters = mfree(m->parameters);
        m->n_parameters = 0;
        m->name = mfree(m->name);
        m->unavailable = mfree(m->unavailable);
}

void provenance_done(Provenance *p) {
        if (!p)
                return;
        free(p->memvisor_version);
        text_done(&p->kernel_release);
        text_done(&p->kernel_version);
        text_done(&p->hostname);
        text_done(&p->kernel_cmdline);
        text_done(&p->cpu_vendor);
        text_done(&p->cpu_model_name);
        text_done(&p->cpu_microcode);
        free(p->cpu_family.unavailable);
        free(p->cpu_model.unavailable);
        free(p->cpu_stepping.unavailable);
        free(p->cpu_processors.unavailable);
        free(p->cpu_uniform.unavailable);
        text_done(&p->cpu_online);
        module_done(&p->kvm);
        for (size_t i = 0; i < p->n_kvm_vendor; i++)
                module_done(&p->kvm_vendor[i]);
        free(p->kvm_vendor);
        free(p->kvm_vendor_unavailable);
        free(p->kvm_device_reason);
        text_done(&p->thp_enabled);
        text_done(&p->thp_defrag);
        text_done(&p->thp_khugepaged_defrag);
        free(p->numa_balancing.unavailable);
        free(p->overcommit_memory.unavailable);
        free(p->overcommit_ratio.unavailable);
        numa_topology_free(p->numa);
        free(p->numa_unavailable);
        free(p->perf_event_paranoid.unavailable);
        text_done(&p->qemu_binary);
        text_done(&p->qemu_version);
        *p = (Provenance) {};
}

static void strip_trailing_newlines(char *s) {
        size_t n = strlen(s);

        while (n > 0 && s[n - 1] == '\n')
                s[--n] = 0;
}

/* Reads ROOT/REL into *ret with the trailing newlines removed. A failure other than -ENOMEM becomes the reason
 * (and 0 is returned with *ret NULL). Text that is not UTF-8 or holds NULs is refused the same way. */
static int read_value(const char *root, const char *rel, size_t max, char **ret, char **reason) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        size_t size;
        int r;

        *ret = NULL;
        path = path_join(root, rel);
        if (!path)
                return -ENOMEM;
        r = read_full_file(path, max, &text, &size);
        if (r == -ENOMEM)
                return r;
        if (r == -EFBIG)
                return reason_set(reason, "/%s: larger than %zu bytes", rel, max);
        if (r < 0)
                return reason_errno(reason, rel, r);
        if (!utf8_is_valid_text(text, size))
                return reason_set(reason, "/%s: not valid UTF-8 text", rel);
        strip_trailing_newlines(text);
        *ret = TAKE_PTR(text);
        return 0;
}

/* An item read from one file; an empty file is unavailable too ("is empty"), never an empty value. */
static int read_text_item(const char *root, const char *rel, size_t max, ProvenanceText *ret) {
        _cleanup_free_ char *text = NULL;
        int r;

        text_done(ret);
        r = read_value(root, rel, max, &text, &ret->unavailable);
        if (r < 0 || ret->unavailable)
                return r;
        if (isempty(text))
                return reason_set(&ret->unavailable, "/%s is empty", rel);
        ret->value = TAKE_PTR(text);
        return 0;
}

static int read_int_item(const char *root, const char *rel, ProvenanceInt *ret) {
        ProvenanceText t = {};
        int v, r;

        r = read_text_item(root, rel, VALUE_FILE_MAX, &t);
        if (r < 0)
                return r;
        *ret = (ProvenanceInt) {};
        if (t.unavailable) {
                ret->unavailable = TAKE_PTR(t.unavailable);
                return 0;
        }
        r = parse_int(t.value, &v);
        if (r < 0)
                r = reason_set(&ret->unavailable, "/%s: not an integer: \"%s\"", rel, t.value);
        else {
                ret->available = true;
                ret->value = v;
        }
        text_done(&t);
        return r;
}

/* THP files list the choices with the selected one in brackets ("always [madvise] never"); a file without
 * brackets (khugepaged/defrag: "1") is its own value. */
static int read_selected_item(const char *root, const char *rel, ProvenanceText *ret) {
        char *open, *close;
        int r;

        r = read_text_item(root, rel, VALUE_FILE_MAX, ret);
        if (r < 0 || !ret->value)
                return r;
        open = strchr(ret->value, '[');
        if (!open)
                return 0;
        close = strchr(open, ']');
        if (!close || close == open + 1) {
                ret->value = mfree(ret->value);
                return reason_set(&ret->unavailable, "/%s: no [selected] value", rel);
        }
        *close = 0;
        memmove(ret->value, open + 1, (size_t) (close - open));
        return 0;
}

/* The fields compared across processors, in the order of the Provenance items. */
enum {
        CPU_VENDOR,
        CPU_MODEL_NAME,
        CPU_FAMILY,
        CPU_MODEL,
        CPU_STEPPING,
        CPU_MICROCODE,
        _CPU_FIELD_MAX,
};
static const char *const cpuinfo_keys[_CPU_FIELD_MAX] = {
        [CPU_VENDOR] = "vendor_id",
        [CPU_MODEL_NAME] = "model name",
        [CPU_FAMILY] = "cpu family",
        [CPU_MODEL] = "model",
        [CPU_STEPPING] = "stepping",
        [CPU_MICROCODE] = "microcode",
};

static int cpu_text(const char *value, const char *key, ProvenanceText *ret) {
        if (!value)
                return reason_set(&ret->unavailable, "no \"%s\" line in /proc/cpuinfo", key);
        if (isempty(value))
                return reason_set(&ret->unavailable, "\"%s\" is empty in /proc/cpuinfo", key);
        return text_set(ret, value);
}

static int cpu_int(const char *value, const char *key, ProvenanceInt *ret) {
        int v;

        if (!value)
                return reason_set(&ret->unavailable, "no \"%s\" line in /proc/cpuinfo", key);
        if (parse_int(value, &v) < 0)
                return reason_set(&ret->unavailable, "\"%s\" in /proc/cpuinfo is not an integer: \"%s\"", key,
                                  value);
        ret->available = true;
        ret->value = v;
        return 0;
}

static int cpu_all_unavailable(Provenance *p, const char *reason) {
        char **reasons[] = {
                &p->cpu_vendor.unavailable, &p->cpu_model_name.unavailable, &p->cpu_microcode.unavailable,
                &p->cpu_family.unavailable, &p->cpu_model.unavailable, &p->cpu_stepping.unavailable,
                &p->cpu_processors.unavailable, &p->cpu_uniform.unavailable,
        };

        for (size_t i = 0; i < ELEMENTSOF(reasons); i++) {
                int r = free_and_strdup(reasons[i], reason);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* /proc/cpuinfo: blocks separated by blank lines, "key<TAB>: value" lines. The first block with a
 * "processor" line gives the items; every later one is compared with it. */
static int read_cpuinfo(const char *root, Provenance *p) {
        _cleanup_free_ char *text = NULL, *reason = NULL;
        const char *first[_CPU_FIELD_MAX] = {}, *cur[_CPU_FIELD_MAX] = {};
        unsigned processors = 0;
        bool in_processor = false, uniform = true;
        char *s, *line;
        int r;

        r = read_value(root, "proc/cpuinfo", CPUINFO_MAX, &text, &reason);
        if (r < 0)
                return r;
        if (reason)
                return cpu_all_unavailable(p, reason);

        s = text;
        for (;;) {
                line = strsep(&s, "\n");
                if (!line || *line == 0) {
                        /* The end of a block. */
                        if (in_processor && processors > 1)
                                for (size_t i = 0; i < _CPU_FIELD_MAX; i++)
                                        if (!streq_ptr(first[i], cur[i]))
                                                uniform = false;
                        memset(cur, 0, sizeof(cur));
                        in_processor = false;
                        if (!line)
                                break;
                        continue;
                }

                char *colon = strchr(line, ':'), *key_end, *value;
                if (!colon)
                        continue;
                key_end = colon;
                while (key_end > line && (key_end[-1] == ' ' || key_end[-1] == '\t'))
                        key_end--;
                *key_end = 0;
                value = colon + 1;
                value += strspn(value, " \t");
                for (size_t n = strlen(value); n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t'); n--)
                        value[n - 1] = 0;

                if (streq(line, "processor")) {
                        processors++;
                        in_processor = true;
                        continue;
                }
                for (size_t i = 0; i < _CPU_FIELD_MAX; i++)
                        if (streq(line, cpuinfo_keys[i])) {
                                if (processors <= 1)
                                        first[i] = value;
                                cur[i] = value;
                        }
        }

        if (processors == 0)
                return cpu_all_unavailable(p, "no \"processor\" entry in /proc/cpuinfo");

        p->cpu_processors = (ProvenanceInt) { .available = true, .value = processors };
        p->cpu_uniform = (ProvenanceBool) { .available = true, .value = uniform };
        if ((r = cpu_text(first[CPU_VENDOR], cpuinfo_keys[CPU_VENDOR], &p->cpu_vendor)) < 0 ||
            (r = cpu_text(first[CPU_MODEL_NAME], cpuinfo_keys[CPU_MODEL_NAME], &p->cpu_model_name)) < 0 ||
            (r = cpu_text(first[CPU_MICROCODE], cpuinfo_keys[CPU_MICROCODE], &p->cpu_microcode)) < 0 ||
            (r = cpu_int(first[CPU_FAMILY], cpuinfo_keys[CPU_FAMILY], &p->cpu_family)) < 0 ||
            (r = cpu_int(first[CPU_MODEL], cpuinfo_keys[CPU_MODEL], &p->cpu_model)) < 0 ||
            (r = cpu_int(first[CPU_STEPPING], cpuinfo_keys[CPU_STEPPING], &p->cpu_stepping)) < 0)
                return r;
        return 0;
}

static int parameter_compare(const void *a, const void *b) {
        return strcmp(((const ProvenanceParameter *) a)->name, ((const ProvenanceParameter *) b)->name);
}

/* Every file of /sys/module/NAME/parameters, by name. */
static int read_module(const char *root, const char *name, ProvenanceModule *ret) {
        _cleanup_free_ char *mod_rel = NULL, *rel = NULL, *path = NULL;
        _cleanup_(closedirp) DIR *d = NULL;
        struct stat st;
        int r;

        *ret = (ProvenanceModule) { .name = strdup(name) };
        if (!ret->name)
                return -ENOMEM;
        if (asprintf(&mod_rel, "sys/module/%s", name) < 0 || asprintf(&rel, "%s/parameters", mod_rel) < 0)
                return -ENOMEM;

        path = path_join(root, mod_rel);
        if (!path)
                return -ENOMEM;
        if (stat(path, &st) < 0) {
                if (errno == ENOENT)
                        return reason_set(&ret->unavailable, "%s module not loaded", name);
                return reason_errno(&ret->unavailable, mod_rel, -errno);
        }
        free(path);
        path = path_join(root, rel);
        if (!path)
                return -ENOMEM;
        d = opendir(path);
        if (!d) {
                if (errno == ENOENT)
                        return reason_set(&ret->unavailable, "%s module has no parameters", name);
                return reason_errno(&ret->unavailable, rel, -errno);
        }

        for (;;) {
                _cleanup_free_ char *file_rel = NULL, *value = NULL, *reason = NULL;
                ProvenanceParameter *t;
                struct dirent *de;

                errno = 0;
                de = readdir(d);
                if (!de) {
                        if (errno != 0)
                                return reason_errno(&ret->unavailable, rel, -errno);
                        break;
                }
                if (de->d_name[0] == '.')
                        continue;
                if (!utf8_is_valid_text(de->d_name, strlen(de->d_name)))
                        continue;       /* a name JSON cannot carry; the kernel never makes one */
                if (ret->n_parameters >= PROVENANCE_PARAMETERS_MAX)
                        return reason_set(&ret->unavailable, "/%s: more than %u parameters", rel,
                                          PROVENANCE_PARAMETERS_MAX);
                if (asprintf(&file_rel, "%s/%s", rel, de->d_name) < 0)
                        return -ENOMEM;
                r = read_value(root, file_rel, VALUE_FILE_MAX, &value, &reason);
                if (r < 0)
                        return r;

                t = reallocarray(ret->parameters, ret->n_parameters + 1, sizeof(ProvenanceParameter));
                if (!t)
                        return -ENOMEM;
                ret->parameters = t;
                t[ret->n_parameters] = (ProvenanceParameter) {
                        .name = strdup(de->d_name),
                        .value = { .value = TAKE_PTR(value), .unavailable = TAKE_PTR(reason) },
                };
                if (!t[ret->n_parameters].name) {
                        text_done(&t[ret->n_parameters].value);
                        return -ENOMEM;
                }
                ret->n_parameters++;
        }

        if (ret->n_parameters > 0)
                qsort(ret->parameters, ret->n_parameters, sizeof(ProvenanceParameter), parameter_compare);
        return 0;
}

static int name_compare(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* The vendor modules: every /sys/module/kvm_* (kvm_intel, kvm_amd, and others such as kvm_pvm). */
static int read_vendor_modules(const char *root, Provenance *p) {
        _cleanup_free_ char *path = NULL;
        _cleanup_(closedirp) DIR *d = NULL;
        char *names[PROVENANCE_VENDOR_MODULES_MAX];
        size_t n = 0;
        int r = 0;

        path = path_join(root, "sys/module");
        if (!path)
                return -ENOMEM;
        d = opendir(path);
        if (!d)
                return reason_errno(&p->kvm_vendor_unavailable, "sys/module", -errno);

        for (;;) {
                struct dirent *de;

                errno = 0;
                de = readdir(d);
                if (!de) {
                        if (errno != 0)
                                r = reason_errno(&p->kvm_vendor_unavailable, "sys/module", -errno);
                        break;
                }
                if (!startswith(de->d_name, "kvm_"))
                        continue;
                if (n >= PROVENANCE_VENDOR_MODULES_MAX) {
                        r = reason_set(&p->kvm_vendor_unavailable, "more than %u kvm_* modules loaded",
                                       PROVENANCE_VENDOR_MODULES_MAX);
                        break;
                }
                names[n] = strdup(de->d_name);
                if (!names[n]) {
                        r = -ENOMEM;
                        break;
                }
                n++;
        }
        if (r >= 0 && !p->kvm_vendor_unavailable && n == 0)
                r = reason_set(&p->kvm_vendor_unavailable, "no kvm vendor module (kvm_intel, kvm_amd, …) loaded");
        if (r >= 0 && !p->kvm_vendor_unavailable) {
                qsort(names, n, sizeof(char *), name_compare);
                p->kvm_vendor = calloc(n, sizeof(ProvenanceModule));
                if (!p->kvm_vendor)
                        r = -ENOMEM;
                for (size_t i = 0; r >= 0 && i < n; i++) {
                        r = read_module(root, names[i], &p->kvm_vendor[i]);
                        p->n_kvm_vendor++;
                }
        }
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        return r;
}

/* Usable: opens read-write and answers KVM_GET_API_VERSION with the stable API version. */
static int check_kvm_device(const char *root, Provenance *p) {
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;
        int v;

        path = path_join(root, "dev/kvm");
        if (!path)
                return -ENOMEM;
        fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return reason_errno(&p->kvm_device_reason, "dev/kvm", -errno);
        v = ioctl(fd, KVM_GET_API_VERSION, 0);
        if (v < 0) {
                char buf[128];
                return reason_set(&p->kvm_device_reason, "/dev/kvm: KVM_GET_API_VERSION: %s",
                                  strerror_r(errno, buf, sizeof(buf)));
        }
        if (v != KVM_API_VERSION)
                return reason_set(&p->kvm_device_reason, "/dev/kvm: API version %i, not %i", v, KVM_API_VERSION);
        p->kvm_device_usable = true;
        p->kvm_api_version = v;
        return 0;
}

static int read_numa(const char *root, Provenance *p) {
        int r;

        r = numa_topology_read(root, &p->numa);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                char buf[128];
                p->numa = NULL;
                return reason_set(&p->numa_unavailable, "cannot read the NUMA topology below "
                                  "/sys/devices/system: %s", strerror_r(-r, buf, sizeof(buf)));
        }
        return 0;
}

int provenance_collect(const char *root, Provenance *ret) {
        _cleanup_(provenance_done) Provenance p = {};
        struct timespec ts;
        int r;

        if (!root)
                root = "/";
        if (root[0] != '/')
                return -EINVAL;

        if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
                return -errno;
        p.collected_usec = (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
        p.memvisor_version = strdup(PROJECT_VERSION);
        if (!p.memvisor_version)
                return -ENOMEM;

        if ((r = read_text_item(root, "proc/sys/kernel/osrelease", VALUE_FILE_MAX, &p.kernel_release)) < 0 ||
            (r = read_text_item(root, "proc/sys/kernel/version", VALUE_FILE_MAX, &p.kernel_version)) < 0 ||
            (r = read_text_item(root, "proc/sys/kernel/hostname", VALUE_FILE_MAX, &p.hostname)) < 0 ||
            (r = read_text_item(root, "proc/cmdline", CMDLINE_MAX, &p.kernel_cmdline)) < 0 ||
            (r = read_cpuinfo(root, &p)) < 0 ||
            (r = read_text_item(root, "sys/devices/system/cpu/online", VALUE_FILE_MAX, &p.cpu_online)) < 0 ||
            (r = read_module(root, "kvm", &p.kvm)) < 0 ||
            (r = read_vendor_modules(root, &p)) < 0 ||
            (r = check_kvm_device(root, &p)) < 0 ||
            (r = read_selected_item(root, "sys/kernel/mm/transparent_hugepage/enabled", &p.thp_enabled)) < 0 ||
            (r = read_selected_item(root, "sys/kernel/mm/transparent_hugepage/defrag", &p.thp_defrag)) < 0 ||
            (r = read_selected_item(root, "sys/kernel/mm/transparent_hugepage/khugepaged/defrag",
                                    &p.thp_khugepaged_defrag)) < 0 ||
            (r = read_int_item(root, "proc/sys/kernel/numa_balancing", &p.numa_balancing)) < 0 ||
            (r = read_int_item(root, "proc/sys/vm/overcommit_memory", &p.overcommit_memory)) < 0 ||
            (r = read_int_item(root, "proc/sys/vm/overcommit_ratio", &p.overcommit_ratio)) < 0 ||
            (r = read_numa(root, &p)) < 0 ||
            (r = read_int_item(root, "proc/sys/kernel/perf_event_paranoid", &p.perf_event_paranoid)) < 0 ||
            (r = reason_set(&p.qemu_binary.unavailable, "not collected")) < 0 ||
            (r = reason_set(&p.qemu_version.unavailable, "not collected")) < 0)
                return r;

        *ret = p;
        p = (Provenance) {};
        return 0;
}

int provenance_set_qemu_version(Provenance *p, const char *binary, const char *version) {
        int r;

        if (!binary || !version)
                return -EINVAL;
        r = text_set(&p->qemu_binary, binary);
        if (r < 0)
                return r;
        return text_set(&p->qemu_version, version);
}

int provenance_set_qemu_unavailable(Provenance *p, const char *binary, const char *reason) {
        int r;

        if (!binary || !reason)
                return -EINVAL;
        r = text_set(&p->qemu_binary, binary);
        if (r < 0)
                return r;
        text_done(&p->qemu_version);
        return free_and_strdup(&p->qemu_version.unavailable, reason);
}

static uint64_t now_usec(void) {
        struct timespec ts = {};

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);     /* cannot fail with a valid clock and pointer */
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

/* Reads the child's stdout to EOF (keeping the first QEMU_VERSION_MAX bytes) and waits for its exit, both
 * until the deadline. */
static int drain_and_wait(pid_t pid, int fd, uint64_t deadline, char *buf, size_t *n, int *ret_status) {
        bool eof = false;

        for (;;) {
                uint64_t now = now_usec();
                int status;
                pid_t k;

                if (eof) {
                        k = waitpid(pid, &status, WNOHANG);
                        if (k < 0 && errno != EINTR)
                                return -errno;
                        if (k == pid) {
                                *ret_status = status;
                                return 0;
                        }
                }
                if (now >= deadline)
                        return -ETIMEDOUT;
                if (eof) {
                        (void) usleep((useconds_t) MIN(deadline - now, 10 * USEC_PER_MSEC));
                        continue;
                }

                struct pollfd pfd = { .fd = fd, .events = POLLIN };
                int timeout_ms = (int) MIN((deadline - now + 999) / 1000, (uint64_t) 1000);
                if (poll(&pfd, 1, timeout_ms) < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (pfd.revents == 0)
                        continue;

                char chunk[1024];
                ssize_t l = read(fd, chunk, sizeof(chunk));
                if (l < 0) {
                        if (errno == EINTR || errno == EAGAIN)
                                continue;
                        return -errno;
                }
                if (l == 0) {
                        eof = true;
                        continue;
                }
                size_t keep = MIN((size_t) l, QEMU_VERSION_MAX - *n);
                memcpy(buf + *n, chunk, keep);
                *n += keep;
        }
}

int provenance_read_qemu_version(const char *binary, uint64_t timeout_usec, char **ret_version) {
        _cleanup_close_ int rfd = -EBADF, wfd = -EBADF;
        posix_spawn_file_actions_t actions;
        posix_spawnattr_t attr;
        char buf[QEMU_VERSION_MAX + 1];
        char *argv[] = { (char *) binary, (char *) "--version", NULL };
        uint64_t deadline = now_usec() + timeout_usec;
        size_t n = 0;
        sigset_t none;
        pid_t pid;
        int pipefd[2], status = 0, r;

        if (isempty(binary))
                return -EINVAL;
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        rfd = pipefd[0];
        wfd = pipefd[1];

        r = posix_spawn_file_actions_init(&actions);
        if (r != 0)
                return -r;
        r = posix_spawnattr_init(&attr);
        if (r != 0) {
                posix_spawn_file_actions_destroy(&actions);
                return -r;
        }
        sigemptyset(&none);
        r = posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        if (r == 0)
                r = posix_spawn_file_actions_adddup2(&actions, wfd, STDOUT_FILENO);
        if (r == 0)
                r = posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
        if (r == 0)
                r = posix_spawnattr_setsigmask(&attr, &none);
        if (r == 0)
                r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
        if (r == 0)
                r = posix_spawnp(&pid, binary, &actions, &attr, argv, environ);
        posix_spawn_file_actions_destroy(&actions);
        posix_spawnattr_destroy(&attr);
        if (r != 0)
                return -r;
        wfd = safe_close(wfd);

        r = drain_and_wait(pid, rfd, deadline, buf, &n, &status);
        if (r < 0) {
                (void) kill(pid, SIGKILL);
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                return r;
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return -EBADMSG;
        buf[n] = 0;
        buf[strcspn(buf, "\n")] = 0;
        if (isempty(buf) || !utf8_is_valid_text(buf, strlen(buf)))
                return -EBADMSG;
        *ret_version = strdup(buf);
        return *ret_version ? 0 : -ENOMEM;
}

int provenance_collect_qemu(Provenance *p, const char *binary, uint64_t timeout_usec) {
        _cleanup_free_ char *version = NULL, *reason = NULL;
        char buf[128];
        int r;

        if (isempty(binary))
                return -EINVAL;
        r = provenance_read_qemu_version(binary, timeout_usec, &version);
        if (r == -ENOMEM)
                return r;
        if (r >= 0)
                return provenance_set_qemu_version(p, binary, version);
        if (r == -EBADMSG)
                r = reason_set(&reason, "%s --version failed or printed no version", binary);
        else if (r == -ETIMEDOUT)
                r = reason_set(&reason, "%s --version did not exit within %" PRIu64 " ms", binary,
                               timeout_usec / USEC_PER_MSEC);
        else
                r = reason_set(&reason, "cannot run %s: %s", binary, strerror_r(-r, buf, sizeof(buf)));
        if (r < 0)
                return r;
        return provenance_set_qemu_unavailable(p, binary, reason);
}
