#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Proves that the real QEMU accepts every golden command line in GOLDEN-DIR (written by test-qemu-argv):
# each one is started with -S (vCPUs never run), the QMP socket it was given is used to check what QEMU made
# of the arguments (run state, name, memory backend size/policy/host-nodes/prealloc/share/merge/dump/reserve,
# drives, balloon device, console file), and then QEMU is told to quit and must exit with status 0.
#
# The golden files use paths under /var/lib/memvisor-test; they are replaced by a scratch directory holding
# stand-ins: a file with a minimal bzImage header as the kernel (QEMU parses the kernel at startup, before
# any vCPU runs), small raw and qcow2 images. A golden file with "fd=3" gets a listening unix socket as fd 3,
# exactly as memvisord passes it; one with "-add-fd fd=N,set=S" gets the write end of a pipe as fd N, as
# memvisord passes the console, and QEMU must open it (a copy from the set) when the chardev opens /dev/fdset/S.
#
# Usage: check-qemu-accepts.sh GOLDEN-DIR [QEMU-BINARY]
# Exit status: 0 all accepted, 1 some refused, 77 QEMU or python3 missing. A golden file that needs what the
# host lacks (KVM, free huge pages, qemu-img) is reported as skipped; with huge pages the check still demands
# that QEMU got as far as mapping guest RAM, which proves that the options were accepted.

set -euo pipefail

golden_dir=${1:?usage: check-qemu-accepts.sh GOLDEN-DIR [QEMU-BINARY]}
qemu=${2:-$(command -v qemu-system-x86_64 || true)}
prefix=/var/lib/memvisor-test

if [[ -z "$qemu" || ! -x "$qemu" ]]; then
        echo "SKIP: qemu-system-x86_64 not found"
        exit 77
fi
if ! command -v python3 >/dev/null; then
        echo "SKIP: python3 not found"
        exit 77
fi

tmp=$(mktemp -d /tmp/check-qemu-accepts.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# Stand-ins for the files the golden command lines name.
mkdir -p "$tmp/run" "$tmp/mem,dir"
python3 - "$tmp/vmlinuz" <<'EOF'
import struct, sys
# Boot protocol 2.02 bzImage: 1 setup sector after the boot sector, then a 64 KiB "kernel".
img = bytearray(2 * 512 + 65536)
img[0x1f1] = 1                                  # setup_sects
struct.pack_into('<H', img, 0x1fe, 0xaa55)      # boot_flag
img[0x202:0x206] = b'HdrS'                      # header magic
struct.pack_into('<H', img, 0x206, 0x0202)      # protocol version
img[0x211] = 0x01                               # loadflags: LOADED_HIGH (bzImage)
open(sys.argv[1], 'wb').write(img)
EOF
truncate -s 1M "$tmp/initrd.img" "$tmp/root.img" "$tmp/data,1.img"
have_qemu_img=0
if command -v qemu-img >/dev/null; then
        qemu-img create -q -f qcow2 "$tmp/root.qcow2" 16M
        qemu-img create -q -f qcow2 "$tmp/SCRATCH.QCOW2" 16M
        have_qemu_img=1
fi

kvm_usable=0
kvm_cpu_workaround=0
if [[ -r /dev/kvm && -w /dev/kvm ]]; then
        kvm_usable=1
        # Some (nested) KVM hosts refuse the IA32_ARCH_CAPABILITIES MSR that "-cpu host" sets, and QEMU aborts
        # with "failed to set MSR 0x10a". Then the KVM command lines are checked with that one feature off.
        probe=$(echo '{"execute":"qmp_capabilities"}
{"execute":"quit"}' | timeout 20 "$qemu" -machine q35 -accel kvm -cpu host -m 64M -nodefaults -display none \
                -no-user-config -S -qmp stdio 2>&1 >/dev/null || true)
        if [[ "$probe" == *"failed to set MSR 0x10a"* ]]; then
                kvm_cpu_workaround=1
                echo "NOTE: this host's KVM refuses MSR 0x10a for -cpu host (QEMU aborts); KVM command lines are" \
                     "checked with -cpu host,-arch-capabilities"
        fi
fi
free_hugepages_kb=$(awk '/^HugePages_Free:/ { f = $2 } /^Hugepagesize:/ { s = $2 } END { print f * s }' /proc/meminfo)

cat >"$tmp/drive.py" <<'EOF'
import atexit, fcntl, json, os, socket, subprocess, sys, time

name, tmp, allow_no_hugepages = sys.argv[1], sys.argv[2], sys.argv[3] == '1'
argv = sys.argv[4:]

def fail(msg):
    print(f'FAIL {name}: {msg}')
    sys.exit(1)

def opts(s):
    """Splits QEMU option text "a=b,c=d" honouring ',,' escapes; returns a list of (key, value)."""
    out, cur, i = [], '', 0
    while i < len(s):
        if s[i] == ',':
            if s[i + 1:i + 2] == ',':
                cur += ','
                i += 2
                continue
            out.append(cur)
            cur = ''
        else:
            cur += s[i]
        i += 1
    out.append(cur)
    return [tuple(o.split('=', 1)) if '=' in o else (o, None) for o in out]

def after(flag):
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == flag]

# What QEMU should report, from the command line itself: each memory backend (one, or one per guest NUMA
# node) as query-memdev shows it.
def host_nodes(obj):
    nodes = []
    for k, v in obj[1:]:
        if k == 'host-nodes':
            a, _, b = v.partition('-')
            try:
                nodes += list(range(int(a), int(b or a) + 1))
            except ValueError:
                return None     # not ours to judge: QEMU will say what it thinks of it
    return nodes

def backend_want(obj):
    b = dict(o for o in obj[1:])
    want = {
        'id': b['id'],
        'size': int(b['size']),
        'policy': b.get('policy', 'default'),
        'host-nodes': host_nodes(obj),
        'prealloc': b.get('prealloc') == 'on',
        # [Memory] Share=, Merge=, Dump=, Reserve=: memfd is shared unless told otherwise, the others private.
        'share': b.get('share', 'on' if obj[0][0] == 'memory-backend-memfd' else 'off') == 'on',
        'merge': b.get('merge', 'on') == 'on',
        'dump': b.get('dump', 'on') == 'on',
        'reserve': b.get('reserve', 'on') == 'on',
    }
    if want['host-nodes'] is None:
        del want['host-nodes']
    return want

objects = [opts(o) for o in after('-object') if o.startswith('memory-backend-')]
obj = objects[0]
backend = dict(o for o in obj[1:])
nodes = host_nodes(obj)
# -numa node,nodeid=N,cpus=…,memdev=mN: what "info numa" must say (vCPUs and MiB per node).
numa_nodes = {}
for n in after('-numa'):
    if n.startswith('node,'):
        o = opts(n[5:])
        d = dict(o)
        cpus = []
        for k, v in o:
            if k == 'cpus':
                a, _, b = v.partition('-')
                cpus += list(range(int(a), int(b or a) + 1))
        size = [int(dict(x[1:])['size']) for x in objects if dict(x[1:])['id'] == d['memdev']][0]
        numa_nodes[int(d['nodeid'])] = (cpus, size >> 20)
drives = [dict(opts(d))['file'] for d in after('-drive')]
balloon = 'virtio-balloon-pci,id=balloon0' in after('-device')
console = [dict(opts(c[5:]))['path'] for c in after('-chardev') if c.startswith('file,')]
vm_name = after('-name')[0].split(',')[0]

# -add-fd fd=N,set=S: the write end of a pipe, as memvisord passes the console, as fd N.
add_fds = {}                    # fd number in QEMU -> (set, "pipe:[INODE]", our fd)
pipe_read_ends = []
for a in after('-add-fd'):
    o = dict(opts(a))
    r_end, w_end = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    pipe_read_ends.append(r_end)
    add_fds[int(o['fd'])] = (int(o['set']), 'pipe:[%d]' % os.fstat(w_end).st_ino, w_end)

qmp_sock = os.path.join(tmp, f'{name}.qmp')
listener = None
pass_fd = None
if any(c.startswith('socket,id=qmp,fd=3,') for c in after('-chardev')):
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(qmp_sock)
    listener.listen(1)
    pass_fd = listener.fileno()
else:
    qmp = [q for q in after('-qmp')]
    if not qmp or not qmp[0].startswith('unix:'):
        fail('no QMP socket on the command line')
    qmp_sock = opts(qmp[0][5:])[0][0]

# -chardev socket,id=qga,fd=N: the guest agent port's listening socket, as memvisord passes it.
agent_listener = None
agent = [dict(opts(c[7:])) for c in after('-chardev') if c.startswith('socket,id=qga,')]
if agent:
    agent_listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    agent_listener.bind(os.path.join(tmp, f'{name}.qga'))
    agent_listener.listen(1)

def preexec():
    # Copies above every target first, so that placing one never overwrites another still to be placed.
    place = {n: v[2] for n, v in add_fds.items()}
    if pass_fd is not None:
        place[3] = pass_fd
    if agent_listener is not None:
        place[int(agent[0]['fd'])] = agent_listener.fileno()
    high = {n: fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for n, fd in place.items()}
    for n, fd in high.items():
        os.dup2(fd, n)          # the copy is inheritable

proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        preexec_fn=preexec, close_fds=False)
atexit.register(lambda: proc.poll() is None and proc.kill())
if listener:
    listener.close()
if agent_listener:
    agent_listener.close()
for _, _, fd in add_fds.values():
    os.close(fd)

def qemu_died():
    out, err = proc.communicate(timeout=10)
    err = err.decode(errors='replace').strip()
    if allow_no_hugepages and backend.get('hugetlb') == 'on' and \
       'unable to map backing store for guest RAM' in err:
        print(f'SKIP {name}: options accepted, but no free huge pages to map guest RAM ({err})')
        sys.exit(3)
    fail(f'QEMU exited with {proc.returncode}: {err}')

deadline = time.monotonic() + 20
conn = None
while conn is None:
    if proc.poll() is not None:
        qemu_died()
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(qmp_sock)
        conn = s
    except (FileNotFoundError, ConnectionRefusedError):
        s.close()
        if time.monotonic() > deadline:
            proc.kill()
            fail('QMP socket did not appear')
        time.sleep(0.02)

conn.settimeout(20)
f = conn.makefile('rwb')

def recv():
    while True:
        try:
            line = f.readline()
        except (ConnectionResetError, socket.timeout):
            line = b''
        if not line:
            # With fd=3 the socket exists before QEMU does anything, so a QEMU that fails during startup
            # shows up here as a closed connection.
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                fail('QMP connection closed but QEMU still runs')
            qemu_died()
        msg = json.loads(line)
        if 'event' not in msg:
            return msg

def cmd(execute, **arguments):
    m = {'execute': execute}
    if arguments:
        m['arguments'] = arguments
    try:
        f.write(json.dumps(m).encode() + b'\n')
        f.flush()
    except (BrokenPipeError, ConnectionResetError):
        pass                    # recv() reports why
    r = recv()
    if 'return' not in r:
        fail(f'{execute} failed: {r}')
    return r['return']

if 'QMP' not in recv():
    fail('no QMP greeting')
cmd('qmp_capabilities')

status = cmd('query-status')
if status['status'] != 'prelaunch' or status['running']:
    fail(f'expected a stopped guest in prelaunch, got {status}')
if cmd('query-name').get('name') != vm_name:
    fail('name differs')

memdev = sorted(cmd('query-memdev'), key=lambda m: m['id'])
wants = sorted((backend_want(o) for o in objects), key=lambda w: w['id'])
if len(memdev) != len(wants):
    fail(f'expected {len(wants)} memory backend(s), got {memdev}')
for m, want in zip(memdev, wants):
    got = {k: m.get(k) for k in want}
    if got != want:
        fail(f'memory backend: wanted {want}, QEMU has {got}')
m, want = memdev[0], wants[0]

# Guest NUMA nodes: QEMU's own view ("node 0 cpus: 0 1" / "node 0 size: 128 MB"); none without -numa.
if numa_nodes:
    info = cmd('human-monitor-command', **{'command-line': 'info numa'})
    have = {}
    for line in info.splitlines():
        w = line.split()
        if len(w) >= 4 and w[0] == 'node' and w[2] == 'cpus:':
            have.setdefault(int(w[1]), [[], 0])[0] = [int(c) for c in w[3:]]
        elif len(w) >= 4 and w[0] == 'node' and w[2] == 'size:':
            have.setdefault(int(w[1]), [[], 0])[1] = int(w[3])
    have = {k: (v[0], v[1]) for k, v in have.items()}
    if have != numa_nodes:
        fail(f'guest NUMA nodes: wanted {numa_nodes}, QEMU has {have} ({info!r})')

# [Memory] HotplugSize=: the virtio-mem device on its own backend (vmem0), nothing plugged yet, -m maxmem=.
vmem = [dict(opts(d)) for d in after('-device') if d.startswith('virtio-mem-pci,')]
if vmem:
    vb = [dict(o[1:]) for o in objects if dict(o[1:]).get('id') == 'vmem0'][0]
    devs = [d['data'] for d in cmd('query-memory-devices') if d['type'] == 'virtio-mem']
    vwant = {'id': vmem[0]['id'], 'memdev': '/objects/' + vmem[0]['memdev'], 'max-size': int(vb['size']),
            'requested-size': 0, 'size': 0, 'node': int(vmem[0]['node'])}
    if len(devs) != 1 or {k: devs[0].get(k) for k in vwant} != vwant:
        fail(f'virtio-mem device: wanted {vwant}, QEMU has {devs}')
    maxmem = dict(opts(after('-m')[0]))['maxmem']
    if cmd('query-memory-size-summary')['base-memory'] != int(backend['size']) or not maxmem:
        fail('virtio-mem: base memory or maxmem differs')

blocks = [b['inserted']['file'] for b in cmd('query-block') if 'inserted' in b]
if blocks != drives:
    fail(f'drives: wanted {drives}, QEMU has {blocks}')

peripherals = [p['name'] for p in cmd('qom-list', path='/machine/peripheral')]
if balloon != ('balloon0' in peripherals):
    fail(f'balloon device: wanted {balloon}, QEMU has {peripherals}')

# The agent port: the virtserialport qga0 on the chardev qga (the socket we passed), which the guest has not
# opened (frontend-open false: no guest runs).
chardevs = {c['label']: c for c in cmd('query-chardev')}
if bool(agent) != ('qga0' in peripherals) or bool(agent) != ('qga' in chardevs):
    fail(f'agent port: wanted {bool(agent)}, QEMU has devices {peripherals} and chardevs {list(chardevs)}')
if agent and (chardevs['qga'].get('frontend-open') is not False or
              'unix:' not in chardevs['qga'].get('filename', '')):
    fail(f'agent chardev: {chardevs["qga"]}')

fdsets = {s['fdset-id']: s['fds'] for s in cmd('query-fdsets')}
for c in console:
    if c.startswith('/dev/fdset/'):
        # Opened through the fd set: QEMU holds a copy of our pipe's write end besides the one in the set.
        set_id = int(c[len('/dev/fdset/'):])
        if set_id not in fdsets or not any(v[0] == set_id for v in add_fds.values()):
            fail(f'console {c}: no such fd set passed with -add-fd (QEMU has {fdsets})')
        pipe = [v[1] for v in add_fds.values() if v[0] == set_id][0]
        fd_dir = f'/proc/{proc.pid}/fd'
        copies = sum(1 for f in os.listdir(fd_dir) if os.readlink(os.path.join(fd_dir, f)) == pipe)
        if copies < 2:
            fail(f'console {c}: QEMU did not open {pipe} through the fd set ({copies} fd on it)')
    elif not os.path.exists(c):
        fail(f'console file {c} was not created')

cmd('quit')
try:
    proc.wait(timeout=20)
except subprocess.TimeoutExpired:
    proc.kill()
    fail('QEMU did not exit after quit')
if proc.returncode != 0:
    fail(f'QEMU exited with {proc.returncode} after quit: {proc.stderr.read().decode(errors="replace")}')
print(f'ok   {name}: {m["size"] >> 20} MiB {want["policy"]} nodes={nodes} prealloc={want["prealloc"]} '
      f'backends={len(memdev)} guest-nodes={len(numa_nodes)} '
      f'drives={len(drives)} balloon={balloon} agent={bool(agent)}')
EOF

failed=0 passed=0 skipped=0
shopt -s nullglob
files=("$golden_dir"/*.args)
if (( ${#files[@]} == 0 )); then
        echo "FAIL: no golden files in $golden_dir"
        exit 1
fi

for file in "${files[@]}"; do
        name=$(basename "$file" .args)
        mapfile -t args <"$file"
        args=("${args[@]//"$prefix"/$tmp}")
        # argv[0] as written, unless it is the bare default name or missing here: then the QEMU under test.
        if [[ "${args[0]}" != /* || ! -x "${args[0]}" ]]; then
                args[0]=$qemu
        fi

        line=" ${args[*]} "
        if [[ ( "$line" == *" -accel kvm "* || "$line" == *" -accel kvm,"* ) && $kvm_usable == 0 ]]; then
                echo "SKIP $name: /dev/kvm is not usable"
                skipped=$((skipped + 1))
                continue
        fi
        if [[ ( "$line" == *" -accel kvm "* || "$line" == *" -accel kvm,"* ) && $kvm_cpu_workaround == 1 ]]; then
                for i in "${!args[@]}"; do
                        if [[ "${args[$i]}" == "-cpu" && "${args[$((i + 1))]}" == "host" ]]; then
                                args[$((i + 1))]="host,-arch-capabilities"
                        fi
                done
        fi
        if [[ "$line" == *".qcow2,"* || "$line" == *".QCOW2,"* ]] && (( ! have_qemu_img )); then
                echo "SKIP $name: qemu-img is needed to create qcow2 images"
                skipped=$((skipped + 1))
                continue
        fi
        # Huge pages: if the host has not enough free, QEMU must fail exactly at mapping guest RAM.
        allow_no_hugepages=0
        if [[ "$line" == *"hugetlb=on"* ]]; then
                size=$(grep -o 'size=[0-9]*' <<<"$line" | head -n1 | cut -d= -f2)
                if (( free_hugepages_kb * 1024 < size )); then
                        allow_no_hugepages=1
                fi
        fi

        rc=0
        python3 "$tmp/drive.py" "$name" "$tmp" "$allow_no_hugepages" "${args[@]}" -S || rc=$?
        case $rc in
                0) passed=$((passed + 1)) ;;
                3) skipped=$((skipped + 1)) ;;
                *) failed=$((failed + 1)) ;;
        esac
done

echo "QEMU ($("$qemu" --version | head -n1)) accepted $passed of ${#files[@]} golden command lines;" \
     "$skipped skipped, $failed refused"
(( failed == 0 ))
