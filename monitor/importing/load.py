"""Reading the community file (YAML, contract in docs/contracts.md): `load_community`
parses the text, leaving dates as text so each is checked with its path, and hands it to
the rules in monitor.importing.validate. A file with any problem is rejected whole."""

from __future__ import annotations

import yaml

from monitor.importing.community import CommunityError, CommunitySpec
from monitor.importing.validate import check_community
from monitor.messages import N_, Problem


class _Loader(yaml.SafeLoader):
    """SafeLoader that leaves dates as text: YAML's own date reader fails without saying
    where (an unquoted 2026-02-30), so dates are checked here, with their path."""


_Loader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_community(text: str) -> CommunitySpec:
    """Parse YAML text into a CommunitySpec, or raise CommunityError naming every problem."""
    if not text.strip():
        raise CommunityError([Problem(None, (N_("the file is empty"), {}))])
    try:
        raw = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = (
            (
                N_("line %(line)s, column %(column)s"),
                {"line": mark.line + 1, "column": mark.column + 1},
            )
            if mark
            else None
        )
        problem = getattr(exc, "problem", None) or str(exc)
        if "\\t" in problem or "\t" in problem:
            what = N_("not valid YAML (%(problem)s; indent with spaces, not tabs)")
        else:
            what = N_("not valid YAML (%(problem)s)")
        raise CommunityError([Problem(where, (what, {"problem": problem}))]) from None
    return check_community(raw)
