"""Prints a base port B such that the private servers' ports are all free: B, B+1 (Temporal gRPC, UI) and
B+10..B+16 plus their +10000 (SeaweedFS). Used by scripts/test.sh and bench/paper-dry-run.ts."""
import random, socket


def free(p):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", p)); return True
        except OSError:
            return False


for _ in range(200):
    b = random.randrange(20000, 44000, 20)
    ports = [b, b + 1] + [b + 10 + i for i in range(7)] + [b + 10010 + i for i in range(5)]
    if all(free(p) for p in ports):
        print(b); break
else:
    raise SystemExit("no free port block found")
