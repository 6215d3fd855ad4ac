"""The staplerd command line: options, `-t` configuration checks, signals.

Run inside tests/integration/netns-run (CTest does): only loopback exists there.
"""

import os
import re
import signal
import sys
import time
import unittest

sys.dont_write_bytecode = True      # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (IntegrationTestCase, run, setUpModule, Staplerd, staplerd_binary,
                     stop_process)



class CliTest(IntegrationTestCase):

    def setUp(self):
        super().setUp()
        self.root = self.pki.root("root")
        self.ca_file = self.pki.bundle("ca-bundle.pem", self.root)

    def staplerd_run(self, *args):
        return run([staplerd_binary()] + list(args), check=False, timeout=15)

    def write_conf(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def good_conf_text(self, ca_file=None):
        d = Staplerd(self.tmp, ca_file or self.ca_file)
        return d.config_text()

    def conf_with_line(self, name, section, line):
        """The good configuration with `line` added at the top of `section`. Returns
        (path, line number of the added line)."""
        lines = self.good_conf_text().splitlines()
        i = lines.index("[%s]" % section) + 1
        lines.insert(i, line)
        return self.write_conf(name, "\n".join(lines) + "\n"), i + 1

    # ----------------------------------------------------------------------------------------
    # Options

    def test_version(self):
        p = self.staplerd_run("-V")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout + p.stderr, r"\d+\.\d+\.\d+")

    def test_help(self):
        p = self.staplerd_run("-h")
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout + p.stderr
        self.assertRegex(out.lower(), r"usage")
        self.assertIn("-c", out)
        self.assertIn("-t", out)

    def test_unknown_option(self):
        p = self.staplerd_run("-Z")
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertIn("usage", p.stderr.lower())

    def test_extra_argument_is_usage_error(self):
        p = self.staplerd_run("-t", "-c", self.write_conf("good.conf", self.good_conf_text()),
                              "stray")
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertIn("usage", p.stderr.lower())

    # ----------------------------------------------------------------------------------------
    # -t: configuration and trust bundle checks

    def test_check_good_config(self):
        conf = self.write_conf("good.conf", self.good_conf_text())
        p = self.staplerd_run("-t", "-c", conf)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_check_unknown_key_names_file_line_key(self):
        conf = self.write_conf("bad.conf", "[server]\nlisten = 127.0.0.1:8080\nbogus = 1\n")
        p = self.staplerd_run("-t", "-c", conf)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("bad.conf:3: bogus:", p.stderr)

    def test_check_unknown_key_in_full_config(self):
        conf, line = self.conf_with_line("bad.conf", "upstream", "retries = 3")
        p = self.staplerd_run("-t", "-c", conf)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("bad.conf:%d: retries:" % line, p.stderr)

    def test_check_bad_duration_names_file_line_key(self):
        text = self.good_conf_text().replace("timeout = 5s", "timeout = 10x")
        self.assertIn("timeout = 10x", text)
        line = text.splitlines().index("timeout = 10x") + 1
        conf = self.write_conf("bad.conf", text)
        p = self.staplerd_run("-t", "-c", conf)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("bad.conf:%d: timeout:" % line, p.stderr)

    def test_check_bad_size_names_file_line_key(self):
        text = self.good_conf_text().replace("max_request = 64k", "max_request = lots")
        line = text.splitlines().index("max_request = lots") + 1
        conf = self.write_conf("bad.conf", text)
        p = self.staplerd_run("-t", "-c", conf)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("bad.conf:%d: max_request:" % line, p.stderr)

    def test_check_missing_config_file(self):
        missing = os.path.join(self.tmp, "nowhere.conf")
        p = self.staplerd_run("-t", "-c", missing)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(missing, p.stderr)

    def test_check_missing_ca_file(self):
        missing = os.path.join(self.tmp, "no-such-bundle.pem")
        conf = self.write_conf("good.conf", self.good_conf_text(ca_file=missing))
        p = self.staplerd_run("-t", "-c", conf)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(missing, p.stderr)

    def test_check_junk_ca_file(self):
        junk = os.path.join(self.tmp, "junk-bundle.pem")
        with open(junk, "w") as f:
            f.write("this is not a certificate bundle\n")
        conf = self.write_conf("good.conf", self.good_conf_text(ca_file=junk))
        p = self.staplerd_run("-t", "-c", conf)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(junk, p.stderr)

    def test_start_with_bad_config_fails(self):
        conf = self.write_conf("bad.conf", "[server]\nlisten = 127.0.0.1:8080\nbogus = 1\n")
        p = self.staplerd_run("-c", conf)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("bad.conf:3: bogus:", p.stderr)

    # ----------------------------------------------------------------------------------------
    # conf/staplerd.conf, the shipped example: accepted as it is

    SHIPPED_CONF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "conf",
                                "staplerd.conf")

    def shipped_conf(self, uncomment_all=False):
        """The shipped configuration with only the paths and the port replaced (the keys
        stay where they are, set instead of commented out). With uncomment_all, every other
        key is set too, at the default the file documents."""
        with open(self.SHIPPED_CONF) as f:
            text = f.read()
        values = {"listen": "127.0.0.1:1",
                  "admin_socket": os.path.join(self.tmp, "admin.sock"),
                  "database": os.path.join(self.tmp, "cache.db"),
                  "ca_file": self.ca_file}
        for key, value in values.items():
            text, n = re.subn(r"(?m)^;?%s = .*$" % key, "%s = %s" % (key, value), text)
            self.assertEqual(n, 1, "conf/staplerd.conf: one line for %s" % key)
        if uncomment_all:
            text, n = re.subn(r"(?m)^;([a-z_]+ =.*)$", r"\1", text)
            self.assertGreater(n, 0)
        return self.write_conf("staplerd.conf", text)

    def test_shipped_conf_is_accepted(self):
        p = self.staplerd_run("-t", "-c", self.shipped_conf())
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("is ok", p.stdout)

    def test_shipped_conf_defaults_are_valid_keys_and_values(self):
        # Every commented key exists and its documented default is a valid value.
        p = self.staplerd_run("-t", "-c", self.shipped_conf(uncomment_all=True))
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    # ----------------------------------------------------------------------------------------
    # Signals

    def test_sigterm_exits_0(self):
        d = self.staplerd(self.ca_file)
        self.assertEqual(d.stop(), 0)

    def test_sigint_exits_0(self):
        d = self.staplerd(self.ca_file)
        code = stop_process(d.proc, sig=signal.SIGINT)
        d.proc = None
        self.assertEqual(code, 0)

    def test_sighup_does_not_kill(self):
        d = self.staplerd(self.ca_file)
        for _ in range(2):
            os.kill(d.proc.pid, signal.SIGHUP)
            time.sleep(0.5)
            self.assertIsNone(d.proc.poll(), "staplerd exited on SIGHUP")
            st, _, _ = d.request("GET", "/healthz")
            self.assertEqual(st, 200)
        self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    unittest.main()
