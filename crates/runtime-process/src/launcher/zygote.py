
# Gust's Python zygote (decision 0029), run after launcher.py (without its last line): the
# interpreter and the standard library the launcher uses are loaded once, here; every instance
# is a fork of this process, made in new namespaces and cgroups, with the seccomp filters and a
# host uid of its own, that then runs the launcher's `main()`.
#
# The zygote is root of its own user namespace (which maps the instances' host uids at 10000
# and up) and never runs an action's code. fd 4 is a SOCK_SEQPACKET socket to the server:
#   in:  b'home' + the `tasks` (v1) or `cgroup.procs` (v2) files of the zygote's own groups
#        b'fork <seq> <uid>' + the instance's stdin, stdout, stderr, fd 3, then its groups'
#        files
#   out: b'forked <seq> <pid>' + a pidfd of the instance | b'failed <seq> <why>'
#        b'exit <pid> <wait status>' when an instance has ended
import array
import ctypes
import signal
import socket
import struct

import base64, collections, datetime, hashlib, math, random, re, time, urllib.parse  # noqa: E401,F401

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS = 0x00020000, 0x02000000, 0x04000000
CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x08000000, 0x10000000, 0x20000000, 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP = 1, 4, 38, 22
SECCOMP_MODE_FILTER = 2
INSIDE_ID = 1000
TMP_BYTES = 64 * 1024 * 1024

libc = ctypes.CDLL(None, use_errno=True)


class SockFprog(ctypes.Structure):
    _fields_ = [('len', ctypes.c_ushort), ('filter', ctypes.c_void_p)]


class CapHeader(ctypes.Structure):
    _fields_ = [('version', ctypes.c_uint32), ('pid', ctypes.c_int)]


class CapData(ctypes.Structure):
    _fields_ = [('effective', ctypes.c_uint32), ('permitted', ctypes.c_uint32), ('inheritable', ctypes.c_uint32)]


def check(r, what):
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, '%s: %s' % (what, os.strerror(e)))


def load_filters(path):
    # u32 count, then per filter u32 instructions and 8 bytes each (struct sock_filter).
    data = open(path, 'rb').read()
    (count,), at, progs = struct.unpack_from('<I', data), 4, []
    for _ in range(count):
        (n,) = struct.unpack_from('<I', data, at)
        at += 4
        buf = ctypes.create_string_buffer(data[at:at + 8 * n], 8 * n)
        at += 8 * n
        progs.append((buf, SockFprog(n, ctypes.addressof(buf))))
    return progs


def write(path, text):
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def become_instance(uid, fds, filters):
    # In the child, PID 1 of a new PID namespace: never returns from a failure.
    for i, fd in enumerate(fds[:4]):
        os.dup2(fd, i)
    os.closerange(4, 1 << 16)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    check(libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP), 'unshare')
    check(libc.mount(b'proc', b'/proc', b'proc', MS_NOSUID | MS_NODEV | MS_NOEXEC, None), 'mount /proc')
    opts = ('size=%d,mode=1777' % TMP_BYTES).encode()
    check(libc.mount(b'tmpfs', b'/tmp', b'tmpfs', MS_NOSUID | MS_NODEV, opts), 'mount /tmp')
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    # A change of uid makes a process undumpable, and its /proc files root's: its own again,
    # so that it can write its maps (ptrace stays refused by seccomp).
    check(libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), 'dumpable')
    # Seen from inside as uid 1000, as every instance is: a user namespace of its own that maps
    # only its host uid; its capabilities there are dropped at once.
    check(libc.unshare(CLONE_NEWUSER), 'unshare the user namespace')
    write('/proc/self/setgroups', 'deny')
    write('/proc/self/uid_map', '%d %d 1\n' % (INSIDE_ID, uid))
    write('/proc/self/gid_map', '%d %d 1\n' % (INSIDE_ID, uid))
    check(libc.capset(ctypes.byref(CapHeader(0x20080522, 0)), ctypes.byref((CapData * 2)())), 'capset')
    check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), 'parent-death signal')
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 'no_new_privs')
    for _, prog in filters:
        check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0), 'seccomp')
    os.setsid()
    os.chdir('/tmp')
    # Its own random sequence, not a copy of the zygote's (uuid, secrets and tempfile read
    # the kernel's).
    random.seed()


def zygote():
    ctl = socket.socket(fileno=4)
    filters = load_filters('/etc/gust-seccomp')
    own_pid_ns = os.open('/proc/self/ns/pid', os.O_RDONLY)
    home = []
    alive = set()

    def send(text, fds=()):
        ctl.sendmsg([text.encode()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array('i', fds))] if fds else [])

    def reap(*_):
        while alive:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            alive.discard(pid)
            send('exit %d %d' % (pid, status))

    signal.signal(signal.SIGCHLD, reap)
    while True:
        msg, fds, _, _ = socket.recv_fds(ctl, 256, 16)
        if not msg:
            os._exit(0)
        words = msg.decode().split()
        if words[0] == 'home':
            home = fds
            continue
        if words[0] != 'fork' or len(words) != 3 or len(fds) < 4:
            for fd in fds:
                os.close(fd)
            send('failed %s bad request' % (words[1] if len(words) > 1 else '-'))
            continue
        seq, uid, pipes, groups = words[1], int(words[2]), fds[:4], fds[4:]
        # No exit is told before its fork is (the handler runs once this is lifted).
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        pid, pidfd, why = -1, -1, None
        try:
            # Born in the instance's groups and PID namespace; back to ours right after.
            for g in groups:
                os.write(g, b'0')
            check(libc.unshare(CLONE_NEWPID), 'unshare the PID namespace')
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                try:
                    signal.pthread_sigmask(signal.SIG_SETMASK, set())
                    become_instance(uid, pipes, filters)
                except BaseException as e:
                    os.write(2, ('the forked instance could not be set up: %s\n' % e).encode())
                    os._exit(126)
                main()
                os._exit(0)
            alive.add(pid)
            pidfd = os.pidfd_open(pid)
        except Exception as e:
            why = str(e)
        # Out of the instance's groups before it is told about (a kill of its group must
        # never reach the zygote).
        if libc.setns(own_pid_ns, CLONE_NEWPID) != 0:
            os._exit(125)
        for g in home:
            os.write(g, b'0')
        for fd in fds:
            os.close(fd)
        if why is None:
            send('forked %s %d' % (seq, pid), [pidfd])
            os.close(pidfd)
        else:
            send('failed %s %s' % (seq, why))
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        reap()


zygote()
