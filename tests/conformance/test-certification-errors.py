#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The failure side of org.varlink.certification, which the reference clients never exercise.

Usage: test-certification-errors.py MEMVISORD IDL_FILE

Starts memvisord (built with -Dcertification=true) in a temporary directory and checks, over a raw
socket: the IDL is served verbatim; unknown client ids get ClientIdError; wrong values, wrong call
modes and calls out of order get CertificationError with "wants" and "got" and end the run; End frees
the client id; the number of tracked runs is capped. Exits 77 when the build lacks the interface."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

IFACE = 'org.varlink.certification'
CLIENT_ID_ERROR = IFACE + '.ClientIdError'
CERT_ERROR = IFACE + '.CertificationError'
CLIENTS_MAX = 64  # CERTIFICATION_CLIENTS_MAX in src/varlink/certification.h

DAEMON = None
IDL_FILE = None
SOCKET = None


class Conn:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(path)
        self.buf = b''

    def close(self):
        self.sock.close()

    def send(self, method, parameters=None, more=False, oneway=False):
        msg = {'method': IFACE + '.' + method if '.' not in method else method}
        if parameters is not None:
            msg['parameters'] = parameters
        if more:
            msg['more'] = True
        if oneway:
            msg['oneway'] = True
        self.sock.sendall(json.dumps(msg).encode() + b'\0')

    def receive(self):
        while b'\0' not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError('server closed the connection')
            self.buf += data
        msg, self.buf = self.buf.split(b'\0', 1)
        return json.loads(msg)

    def call(self, method, parameters=None, **kw):
        self.send(method, parameters, **kw)
        return self.receive()


def start_daemon(tmp):
    sock = os.path.join(tmp, 'run', 'io.memvisor.Manager')
    conf = os.path.join(tmp, 'memvisord.conf')
    open(conf, 'w').close()
    log = open(os.path.join(tmp, 'daemon.log'), 'w')
    proc = subprocess.Popen([DAEMON, '--runtime-dir=' + os.path.join(tmp, 'run'),
                             '--state-dir=' + os.path.join(tmp, 'state'), '--config=' + conf,
                             '--log-target=console', '--log-level=debug'],
                            stdout=log, stderr=subprocess.STDOUT)
    # The socket file appears at bind(), a moment before listen(): wait until connect() succeeds.
    for _ in range(100):
        if proc.poll() is not None:
            break
        try:
            Conn(sock).close()
            return proc, sock
        except (FileNotFoundError, ConnectionRefusedError):
            time.sleep(0.1)
    proc.kill()
    proc.wait()
    with open(os.path.join(tmp, 'daemon.log')) as f:
        sys.stdout.write(f.read())
    raise RuntimeError('memvisord did not start listening')


class CertificationErrors(unittest.TestCase):
    def setUp(self):
        self.c = Conn(SOCKET)

    def tearDown(self):
        self.c.close()

    def start(self):
        r = self.c.call('Start')
        self.assertNotIn('error', r)
        cid = r['parameters']['client_id']
        self.assertRegex(cid, r'^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$')
        return cid

    def ok(self, method, parameters, **kw):
        r = self.c.call(method, parameters, **kw)
        self.assertNotIn('error', r, msg=f'{method}: {r}')
        return r['parameters']

    def run_to(self, last):
        """Start and answer every step up to and including `last` (a TestNN name) correctly."""
        cid = self.start()
        p = {'client_id': cid}
        ret = self.ok('Test01', p)
        if last == 'Test01':
            return cid, ret
        ret = self.ok('Test02', dict(p, bool=ret['bool']))
        ret = self.ok('Test03', dict(p, int=ret['int']))
        ret = self.ok('Test04', dict(p, float=ret['float']))
        ret = self.ok('Test05', dict(p, string=ret['string']))
        ret = self.ok('Test06', dict(p, **ret))
        ret = self.ok('Test07', dict(p, struct=ret['struct']))
        ret = self.ok('Test08', dict(p, map=ret['map']))
        ret = self.ok('Test09', dict(p, set=ret['set']))
        self.assertEqual(last, 'Test09')
        return cid, ret

    def assert_cert_error(self, r, method, got_parameters=None):
        self.assertEqual(r.get('error'), CERT_ERROR, msg=str(r))
        wants, got = r['parameters']['wants'], r['parameters']['got']
        self.assertIsInstance(wants, dict)
        self.assertEqual(got['method'], IFACE + '.' + method)
        if got_parameters is not None:
            self.assertEqual(got['parameters'], got_parameters)
        return wants

    def test_interface_description_verbatim(self):
        with open(IDL_FILE, encoding='utf-8') as f:
            idl = f.read()
        r = self.c.call('org.varlink.service.GetInterfaceDescription', {'interface': IFACE})
        self.assertEqual(r['parameters']['description'], idl)

    def test_unknown_client_id(self):
        r = self.c.call('Test01', {'client_id': 'no-such-client'})
        self.assertEqual(r, {'error': CLIENT_ID_ERROR, 'parameters': {}})
        r = self.c.call('End', {'client_id': ''})
        self.assertEqual(r.get('error'), CLIENT_ID_ERROR)

    def test_wrong_type_is_invalid_parameter(self):
        cid = self.start()
        self.ok('Test01', {'client_id': cid})
        r = self.c.call('Test02', {'client_id': cid, 'bool': 'yes'})
        self.assertEqual(r, {'error': 'org.varlink.service.InvalidParameter', 'parameters': {'parameter': 'bool'}})
        # A type error is not a certification step: the run goes on.
        self.ok('Test02', {'client_id': cid, 'bool': True})

    def test_out_of_order(self):
        cid = self.start()
        r = self.c.call('Test02', {'client_id': cid, 'bool': True})
        wants = self.assert_cert_error(r, 'Test02', {'client_id': cid, 'bool': True})
        self.assertEqual(wants, {'method': IFACE + '.Test01'})
        # The run is over.
        r = self.c.call('Test01', {'client_id': cid})
        self.assertEqual(r.get('error'), CLIENT_ID_ERROR)

    def test_wrong_value(self):
        cid, _ = self.run_to('Test01')
        r = self.c.call('Test02', {'client_id': cid, 'bool': False})
        wants = self.assert_cert_error(r, 'Test02', {'client_id': cid, 'bool': False})
        self.assertEqual(wants, {'method': IFACE + '.Test02', 'parameters': {'client_id': cid, 'bool': True}})
        self.assertEqual(self.c.call('Test03', {'client_id': cid, 'int': 1}).get('error'), CLIENT_ID_ERROR)

    def test_float_for_int_is_rejected(self):
        cid = self.start()
        ret = self.ok('Test01', {'client_id': cid})
        ret = self.ok('Test02', {'client_id': cid, 'bool': ret['bool']})
        self.assertEqual(ret, {'int': 1})
        r = self.c.call('Test03', {'client_id': cid, 'int': 1.0})
        # json.dumps(1.0) is "1.0": a float where the IDL says int.
        self.assertEqual(r.get('error'), 'org.varlink.service.InvalidParameter')

    def test_int_for_float_is_accepted(self):
        cid = self.start()
        ret = self.ok('Test01', {'client_id': cid})
        ret = self.ok('Test02', {'client_id': cid, 'bool': ret['bool']})
        ret = self.ok('Test03', {'client_id': cid, 'int': ret['int']})
        self.assertEqual(ret, {'float': 1.0})
        self.assertEqual(self.ok('Test04', {'client_id': cid, 'float': 1}), {'string': 'ping'})

    def test_unexpected_member_in_struct(self):
        cid, _ = self.run_to('Test01')
        p = {'client_id': cid}
        ret = self.ok('Test02', dict(p, bool=True))
        ret = self.ok('Test03', dict(p, int=ret['int']))
        ret = self.ok('Test04', dict(p, float=ret['float']))
        ret = self.ok('Test05', dict(p, string=ret['string']))
        ret = self.ok('Test06', dict(p, **ret))
        struct = dict(ret['struct'], extra='x')
        r = self.c.call('Test07', dict(p, struct=struct))
        wants = self.assert_cert_error(r, 'Test07', dict(p, struct=struct))
        self.assertNotIn('extra', wants['parameters']['struct'])

    def test_start_with_more(self):
        r = self.c.call('Start', more=True)
        wants = self.assert_cert_error(r, 'Start')
        self.assertEqual(wants, {'method': IFACE + '.Start'})
        self.assertTrue(r['parameters']['got']['more'])

    def test_test10_without_more(self):
        cid, ret = self.run_to('Test09')
        mytype = ret['mytype']
        self.assertEqual(mytype['enum'], 'two')
        self.assertEqual(mytype['stringset'], {'one': {}, 'two': {}, 'three': {}})
        r = self.c.call('Test10', {'client_id': cid, 'mytype': mytype})
        wants = self.assert_cert_error(r, 'Test10')
        self.assertIs(wants.get('more'), True)
        self.assertNotIn('continues', r)

    def test_test10_wrong_mytype(self):
        cid, ret = self.run_to('Test09')
        mytype = ret['mytype']
        mytype['interface']['anon']['bar'] = True
        r = self.c.call('Test10', {'client_id': cid, 'mytype': mytype}, more=True)
        self.assert_cert_error(r, 'Test10')
        self.assertNotIn('continues', r)

    def stream_test10(self, cid, mytype):
        self.c.send('Test10', {'client_id': cid, 'mytype': mytype}, more=True)
        replies = []
        while True:
            r = self.c.receive()
            self.assertNotIn('error', r, msg=str(r))
            replies.append(r['parameters']['string'])
            if not r.get('continues'):
                break
        self.assertEqual(replies, [f'Reply number {i}' for i in range(1, 11)])
        return replies

    def test_test10_nullables_absent_or_null(self):
        # Optional members may be sent as null or left out (the go client leaves them out).
        for drop in (False, True):
            cid, ret = self.run_to('Test09')
            mytype = ret['mytype']
            self.assertIsNone(mytype.get('nullable'))
            if drop:
                mytype.pop('nullable', None)
                mytype.pop('nullable_array_struct', None)
            else:
                mytype['nullable'] = None
                mytype['nullable_array_struct'] = None
            self.stream_test10(cid, mytype)

    def test_test11_not_oneway(self):
        cid, ret = self.run_to('Test09')
        replies = self.stream_test10(cid, ret['mytype'])
        r = self.c.call('Test11', {'client_id': cid, 'last_more_replies': replies})
        wants = self.assert_cert_error(r, 'Test11')
        self.assertIs(wants.get('oneway'), True)

    def test_test11_wrong_replies_fails_end(self):
        cid, ret = self.run_to('Test09')
        replies = self.stream_test10(cid, ret['mytype'])
        self.c.send('Test11', {'client_id': cid, 'last_more_replies': replies[::-1]}, oneway=True)
        # The oneway call gets no reply, so the failure shows at End.
        r = self.c.call('End', {'client_id': cid})
        self.assertEqual(r.get('error'), CLIENT_ID_ERROR)

    def test_full_run_and_end_frees(self):
        cid, ret = self.run_to('Test09')
        replies = self.stream_test10(cid, ret['mytype'])
        self.c.send('Test11', {'client_id': cid, 'last_more_replies': replies}, oneway=True)
        self.assertEqual(self.c.call('End', {'client_id': cid}), {'parameters': {'all_ok': True}})
        self.assertEqual(self.c.call('End', {'client_id': cid}).get('error'), CLIENT_ID_ERROR)

    def test_client_cap(self):
        ids = [self.start() for _ in range(CLIENTS_MAX + 1)]
        self.assertEqual(len(set(ids)), len(ids))
        # The least recently used run was evicted to make room; the newest ones still work.
        self.assertEqual(self.c.call('Test01', {'client_id': ids[0]}).get('error'), CLIENT_ID_ERROR)
        self.ok('Test01', {'client_id': ids[1]})
        self.ok('Test01', {'client_id': ids[-1]})


def main():
    global DAEMON, IDL_FILE, SOCKET
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    DAEMON, IDL_FILE = sys.argv[1], sys.argv[2]

    tmp = tempfile.mkdtemp(prefix='memvisor-certification-errors.')
    proc = None
    try:
        proc, SOCKET = start_daemon(tmp)
        c = Conn(SOCKET)
        info = c.call('org.varlink.service.GetInfo')
        c.close()
        if IFACE not in info['parameters']['interfaces']:
            print('SKIP: memvisord was built without -Dcertification=true')
            return 77
        result = unittest.main(argv=[sys.argv[0], '-v'], exit=False).result
        if proc.poll() is not None:
            print(f'FAIL: memvisord exited with status {proc.returncode} during the tests')
            return 1
        proc.terminate()
        rc = proc.wait(timeout=10)
        proc = None
        if rc != 0:
            print(f'FAIL: memvisord exited with status {rc} after SIGTERM')
            return 1
        if not result.wasSuccessful():
            with open(os.path.join(tmp, 'daemon.log')) as f:
                sys.stdout.write('--- memvisord log ---\n' + f.read())
            return 1
        return 0
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
