"""Crash safety of the real staplerd (docs/contract.md §8 rule 7): kill -9 in the middle of fetching
and storing loses at most the fetches in flight; the database stays consistent and every staple
stored before is served after the restart.

Run inside tests/integration/netns-run (CTest does).
"""

import os
import signal
import sqlite3
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True      # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (free_port, IntegrationTestCase, PEM, setUpModule)




class CrashTest(IntegrationTestCase):

    def test_kill_9_while_storing(self):
        root = self.pki.root("root")
        self.pki.responder(root)
        port = free_port()
        proxy = self.fault_proxy(port)
        leaves = [self.pki.leaf(root, "leaf-%d" % i, serial="%04X" % (0x6000 + i),
                                ocsp_urls=[proxy.url]) for i in range(40)]
        self.responder(root, port=port, ndays=7)
        d = self.staplerd(self.pki.bundle("ca-bundle.pem", root),
                          extra="[refresh]\nwindow = 30d\nmin_interval = 1s\ncheck_interval = 1s\n")
        # Submissions and background refreshes write while the daemon is killed.
        served = {}
        lock = threading.Lock()

        def worker(chunk):
            for leaf in chunk:
                try:
                    st, _, body = d.staple(leaf.pem(), PEM, timeout=10)
                except OSError:
                    return
                if st == 200:
                    with lock:
                        served[leaf.serial] = body

        threads = [threading.Thread(target=worker, args=(leaves[i::4],)) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        os.kill(d.proc.pid, signal.SIGKILL)
        d.proc.wait(timeout=10)
        d.proc = None
        for t in threads:
            t.join(timeout=30)
        self.assertGreater(len(served), 0, "nothing was served before the kill")

        conn = sqlite3.connect(d.database, timeout=5)
        try:
            self.assertEqual(conn.execute("PRAGMA integrity_check").fetchone()[0], "ok")
            rows = conn.execute("SELECT serial, length(response_der) FROM ocsp_response").fetchall()
        finally:
            conn.close()
        self.assertTrue(all(n > 0 for _, n in rows), rows)

        # After the restart, with the upstream gone, every stored staple is served at once.
        proxy.set("close")
        d.start(new_port=True)
        stored = {serial for serial, _ in rows}
        self.assertTrue(stored, "no row survived")
        for leaf in leaves:
            if leaf.serial not in stored:
                continue
            st, _, body = d.staple(leaf.pem(), PEM)
            self.assertEqual(st, 200, "%s: stored but not served after restart" % leaf.serial)
        # A staple is committed before it is answered: none a client got was lost.
        self.assertTrue(set(served) <= stored, "served but lost: %r"
                        % sorted(set(served) - stored))


if __name__ == "__main__":
    unittest.main()
