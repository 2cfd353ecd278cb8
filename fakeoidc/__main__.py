"""Run the fake identity provider alone: `python -m fakeoidc --port 8770 --user alice --groups
support`, then start the console with the OIDC_* variables it prints."""

import argparse
import time

from fakeoidc import FakeOIDC


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8770)
    parser.add_argument("--user", default="alice")
    parser.add_argument("--groups", default="support", help="comma-separated")
    args = parser.parse_args()
    fake = FakeOIDC()
    fake.sign_in_as(args.user, groups=tuple(g for g in args.groups.split(",") if g))
    fake.start(port=args.port)
    for name, value in fake.settings().items():
        print(f"{name}={value}")
    print("OIDC_SUPPORT_GROUPS=support\nOIDC_AUDITOR_GROUPS=auditors")
    print(f"Approving every sign-in as {args.user}. Ctrl-C stops.", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
