"""`accord search-attributes check|register`: Accord's search attributes on a cluster.

The embedded server registers them itself at every start; a cluster's namespace needs them once,
before the first `accord deploy` (workflows are started with them and `accord status` queries
them). The command connects with the same settings as the workers (address, namespace, TLS or
API key), so the operator needs no other tool; registering takes operator rights on the
namespace. A name present with another type is a conflict nothing can mend: a search
attribute's type cannot change.
"""

from __future__ import annotations

import argparse

from accord.cli.engine import EXIT_FAILED, CommandError, connect, load_settings, run_engine_command


def add_search_attributes_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
    actions.add_parser(
        "check",
        help="list the search attributes the namespace lacks; exit 1 if any",
        description="Compare the namespace's custom search attributes with Accord's; exit 1 "
        "when one is missing or has another type.",
    ).set_defaults(search_attributes_action="check")
    actions.add_parser(
        "register",
        help="add the search attributes the namespace lacks (once per namespace)",
        description="Add those of Accord's search attributes the namespace lacks; the others "
        "are left as they are. Needs operator rights on the namespace.",
    ).set_defaults(search_attributes_action="register")


def search_attributes(args: argparse.Namespace) -> int:
    return run_engine_command(_search_attributes(args.search_attributes_action == "register"))


async def _search_attributes(register: bool) -> int:
    from temporalio.service import RPCError

    from accord.embedded import SEARCH_ATTRIBUTES, check_search_attributes, ensure_search_attributes

    settings = load_settings()
    namespace = settings.temporal.namespace
    en = settings.locale == "en"
    client = await connect(settings)
    try:
        if register:
            missing, conflicts = await ensure_search_attributes(client, namespace)
        else:
            missing, conflicts = await check_search_attributes(client, namespace)
    except RPCError as error:
        raise CommandError(
            f"namespace {namespace}: cannot {'register' if register else 'list'} search "
            f"attributes: {error.message}"
        ) from error
    if conflicts:
        raise CommandError(
            f"namespace {namespace}: {'; '.join(conflicts)}. A search attribute's type cannot "
            "be changed: use another namespace (ACCORD_TEMPORAL__NAMESPACE)."
        )

    def say(en_text: str, vi_text: str) -> None:
        print(f"namespace {namespace}: {en_text if en else vi_text}")

    if missing and not register:
        say(
            f"missing {', '.join(missing)}; run `accord search-attributes register`",
            f"thiếu {', '.join(missing)}; hãy chạy `accord search-attributes register`",
        )
        return EXIT_FAILED
    if missing:
        say(f"registered {', '.join(missing)}", f"đã đăng ký {', '.join(missing)}")
    else:
        count = len(SEARCH_ATTRIBUTES)
        say(f"all {count} search attributes present", f"đã có đủ {count} thuộc tính tìm kiếm")
    return 0
