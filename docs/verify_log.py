#!/usr/bin/env python3
"""Re-checks a `paystate export` file (JSON Lines) without paystate: every order's hash chain
(docs/protocol.md, "Commits, hashes and the chain") and every command's fingerprint.
Exit 0 if all holds, 1 with one line per problem otherwise. Standard library only."""
import hashlib, json, sys

GENESIS = "0" * 64

def members(line):
    """Top-level members of a JSON object line as {key: (value, raw text)}."""
    dec, out, i = json.JSONDecoder(), {}, 1
    while line[i] != "}":
        key, i = dec.raw_decode(line, i)
        start = i + 1  # after the ':'
        value, i = dec.raw_decode(line, start)
        out[key] = (value, line[start:i])
        i += line[i] == ","
    return out

def canonical(command):
    """The fingerprint input: the command without issued_at, compact, in stored order."""
    rest = {k: v for k, v in command.items() if k != "issued_at"}
    return json.dumps(rest, separators=(",", ":"), ensure_ascii=False).encode()

def verify(lines):
    heads, problems = {}, []
    for n, line in enumerate(lines, 1):
        m = members(line.rstrip("\n"))
        if not m["subject"][0].startswith("paystate.events."):
            continue
        seq = m["sequence"][0]
        try:
            raw = m["body"][1].encode()
            commit = json.loads(raw)
        except (KeyError, ValueError):
            problems.append(f"line {n} (seq {seq}): not a JSON commit")
            continue
        order, digest = commit["order_id"], hashlib.sha256(raw).hexdigest()
        number, prev = heads.get(order, (0, GENESIS))
        where = f"line {n} (seq {seq}) order {order} commit {commit['commit']}"
        if m["headers"][0].get("Paystate-Commit-Hash", [digest])[0] != digest:
            problems.append(f"{where}: body hashes to {digest}, header says otherwise")
        if commit["commit"] != number + 1 or commit["prev_hash"] != prev:
            problems.append(f"{where}: does not follow commit {number} (hash {prev})")
        fingerprint = hashlib.sha256(canonical(commit["command"])).hexdigest()
        if fingerprint != commit["fingerprint"]:
            problems.append(f"{where}: command fingerprint is {fingerprint}")
        heads[order] = (commit["commit"], digest)
    return heads, problems

if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as f:
        heads, problems = verify(f)
    print("\n".join(problems) or f"ok: {len(heads)} orders, chains and fingerprints verified")
    sys.exit(1 if problems else 0)
