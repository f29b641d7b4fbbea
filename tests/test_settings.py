"""mos_site.settings read from the environment: the secret key and HTTPS behind a proxy.

Each case imports the settings in a fresh interpreter with an environment of its own, as a server
or worker process starting would.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

PRINT = (
    "import json, os, django, mos_site.settings as s\n"
    "os.environ['DJANGO_SETTINGS_MODULE'] = 'mos_site.settings'\n"
    "django.setup()\n"
    "from django.test import RequestFactory\n"
    "out = {k: getattr(s, k, None) for k in ('SECRET_KEY', 'SECURE_PROXY_SSL_HEADER', 'SESSION_COOKIE_SECURE',"
    " 'CSRF_COOKIE_SECURE', 'CSRF_COOKIE_SAMESITE')}\n"
    "out['forwarded_https_is_secure'] = RequestFactory().get('/', HTTP_X_FORWARDED_PROTO='https').is_secure()\n"
    "print(json.dumps(out))\n"
)
CLEARED = ("SECRET_KEY", "SECRET_KEY_FILE", "DATABASE_URL", "DEBUG", "SR_BEHIND_HTTPS_PROXY", "SR_SECURE_COOKIES")


def load(var_dir: Path, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in CLEARED and k != "VAR_DIR"}
    full.update(VAR_DIR=str(var_dir), **env)
    return subprocess.run([sys.executable, "-c", PRINT], check=False, cwd=REPO, env=full, capture_output=True, text=True, timeout=120)


def values(var_dir: Path, **env: str) -> dict:
    result = load(var_dir, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_local_secret_key_is_random_private_and_kept(tmp_path):
    first = values(tmp_path / "a")["SECRET_KEY"]
    key_file = tmp_path / "a" / "secret_key"
    assert key_file.read_text().strip() == first and len(first) >= 50
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert values(tmp_path / "a")["SECRET_KEY"] == first  # the next start reuses it
    assert values(tmp_path / "b")["SECRET_KEY"] != first  # another installation: another key
    assert "insecure" not in first
    assert values(tmp_path / "a", SECRET_KEY="from-the-environment")["SECRET_KEY"] == "from-the-environment"


def test_production_without_a_secret_key_refuses_to_start(tmp_path):
    result = load(tmp_path, DATABASE_URL="postgres://mos@db.example.org/mos")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "SECRET_KEY (or SECRET_KEY_FILE) must be set" in result.stderr
    assert not (tmp_path / "secret_key").exists()
    # DEBUG (a developer against a local PostgreSQL): the local key is made.
    debug = values(tmp_path, DATABASE_URL="postgres://mos@localhost/mos", DEBUG="1")
    assert debug["SECRET_KEY"] == (tmp_path / "secret_key").read_text().strip()
    key_file = tmp_path / "key"
    key_file.write_text("k" * 60 + "\n")
    prod = values(tmp_path, DATABASE_URL="postgres://mos@db.example.org/mos", SECRET_KEY_FILE=str(key_file))
    assert prod["SECRET_KEY"] == "k" * 60


def test_an_unusable_secret_key_file_is_reported(tmp_path):
    (tmp_path / "secret_key").write_text("\n")
    result = load(tmp_path)
    assert result.returncode != 0 and "holds no usable key" in result.stderr


def test_https_proxy_and_secure_cookies_from_the_environment(tmp_path):
    plain = values(tmp_path)
    assert plain["SECURE_PROXY_SSL_HEADER"] is None
    assert plain["SESSION_COOKIE_SECURE"] is False and plain["CSRF_COOKIE_SECURE"] is False
    assert plain["forwarded_https_is_secure"] is False  # a client's own header is not trusted
    proxied = values(tmp_path, SR_BEHIND_HTTPS_PROXY="1")
    assert proxied["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert proxied["SESSION_COOKIE_SECURE"] is True and proxied["CSRF_COOKIE_SECURE"] is True
    # MTurk's iframe sends only SameSite=None cookies; a browser refuses those unless Secure
    assert proxied["CSRF_COOKIE_SAMESITE"] == "None" and plain["CSRF_COOKIE_SAMESITE"] == "Lax"
    assert proxied["forwarded_https_is_secure"] is True
    cookies_only = values(tmp_path, SR_SECURE_COOKIES="yes")
    assert cookies_only["SECURE_PROXY_SSL_HEADER"] is None and cookies_only["SESSION_COOKIE_SECURE"] is True
    mixed = values(tmp_path, SR_BEHIND_HTTPS_PROXY="1", SR_SECURE_COOKIES="0")
    assert mixed["SECURE_PROXY_SSL_HEADER"] and mixed["CSRF_COOKIE_SECURE"] is False
    bad = load(tmp_path, SR_BEHIND_HTTPS_PROXY="maybe")
    assert bad.returncode != 0 and "SR_BEHIND_HTTPS_PROXY='maybe' is not a boolean" in bad.stderr


# Eight threads, each a transaction that reads and then writes (as every rating does): with SQLite's
# default deferred transactions the second writer fails at once with "database is locked".
READ_THEN_WRITE = (
    "import os, threading, time, django\n"
    "os.environ['DJANGO_SETTINGS_MODULE'] = 'mos_site.settings'\n"
    "django.setup()\n"
    "from django.db import connection, transaction\n"
    "with connection.cursor() as c:\n"
    "    c.execute('CREATE TABLE counter (n INTEGER)')\n"
    "connection.close()\n"
    "errors = []\n"
    "def work():\n"
    "    try:\n"
    "        for _ in range(5):\n"
    "            with transaction.atomic(), connection.cursor() as c:\n"
    "                c.execute('SELECT count(*) FROM counter')\n"
    "                n = c.fetchone()[0]\n"
    "                time.sleep(0.01)\n"
    "                c.execute('INSERT INTO counter VALUES (%s)', [n])\n"
    "    except Exception as exc:\n"
    "        errors.append(repr(exc))\n"
    "    finally:\n"
    "        connection.close()\n"
    "threads = [threading.Thread(target=work) for _ in range(8)]\n"
    "[t.start() for t in threads]\n"
    "[t.join() for t in threads]\n"
    "with connection.cursor() as c:\n"
    "    c.execute('SELECT count(*), count(DISTINCT n) FROM counter')\n"
    "    print(errors, c.fetchone())\n"
)


def test_sqlite_by_url_keeps_the_safety_options_and_concurrent_writers_all_succeed(tmp_path):
    """Catches settings that apply timeout/IMMEDIATE only to the default SQLite, not DATABASE_URL=sqlite:///."""
    full = {k: v for k, v in os.environ.items() if k not in CLEARED and k != "VAR_DIR"}
    full.update(VAR_DIR=str(tmp_path), SECRET_KEY="tests-only", DATABASE_URL=f"sqlite:///{tmp_path / 'url.sqlite3'}")
    result = subprocess.run([sys.executable, "-c", READ_THEN_WRITE], check=False, cwd=REPO, env=full,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    # No error, and 40 rows numbered 0..39: every read-then-write saw the writes before it.
    assert result.stdout.strip() == "[] (40, 40)"


PRODUCTION = dict(DATABASE_URL="postgres://mos@db.example.org/mos", SECRET_KEY="p" * 20 + "rod-only-" + "k" * 30,
                  ALLOWED_HOSTS="mos.example.org", CSRF_TRUSTED_ORIGINS="https://mos.example.org",
                  SR_BEHIND_HTTPS_PROXY="1")


def test_check_deploy_is_clean_in_the_documented_production_settings(tmp_path):
    """Catches a deployment without HSTS and the HTTPS redirect (security.W004, W008)."""
    full = {k: v for k, v in os.environ.items() if k not in CLEARED and k != "VAR_DIR"}
    full.update(VAR_DIR=str(tmp_path), **PRODUCTION)
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy"], check=False, cwd=REPO, env=full,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "System check identified no issues (0 silenced).", result.stdout + result.stderr
    assert (result.stdout + result.stderr).count("WARNING") == 0
