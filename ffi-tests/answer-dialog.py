#!/usr/bin/env python3
"""A stand-in for a user at a browser, for the C tests: loads psm's dialog
at URL the way a browser does (keeping its cookie), and submits the form
with ANSWER: a choice ("once", "always", "reject"), "cancel", or
"password=..." for a password dialog. Used as PSM_BROWSER by the tests of
examples-c (psm-fetch, psm-mail): PSM_BROWSER="python3 answer-dialog.py ANSWER"."""
import re
import sys
import urllib.parse
import urllib.request

answer, url = sys.argv[1], sys.argv[2]
origin = re.match(r"(http://[^/]+)", url).group(1)
with urllib.request.urlopen(url, timeout=30) as r:
    page = r.read().decode()
    cookie = r.headers["Set-Cookie"].split(";")[0]
nonce = re.search(r'name="nonce" value="([0-9a-f]+)"', page).group(1)
if answer == "cancel":
    fields = {"nonce": nonce, "action": "cancel"}
elif answer.startswith("password="):
    pw = answer[len("password="):]
    fields = {"nonce": nonce, "action": "answer", "password": pw, "confirm": pw}
else:
    fields = {"nonce": nonce, "choice": answer}
req = urllib.request.Request(
    url,
    data=urllib.parse.urlencode(fields).encode(),
    headers={"Origin": origin, "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"},
    method="POST",
)
with urllib.request.urlopen(req, timeout=60) as r:
    done = r.read().decode()
sys.exit(0 if "psm has your answer" in done else 1)
