"""The `mailsignal` command: every command group mounted on one Typer app (docs/cli.md).

One module per command group beside this one; each raises `MailSignalError` for what a
user got wrong, and `main` prints it as one `error:` line with exit status 2.
"""

from __future__ import annotations

import typer

from ..errors import MailSignalError
from . import data, emails, history, mail, records, relay, scores, server, teams, users, views
from .audit import audit_app
from .common import err
from .privacy import privacy_app
from .privacy_consent import history as privacy_consent_history
from .privacy_consent import import_file as privacy_consent_import
from .privacy_consent import record as privacy_consent
from .privacy_data import minimise as privacy_minimise
from .privacy_data import retention as privacy_retention
from .privacy_notice import notice as privacy_notice
from .privacy_rights import erase as privacy_erase
from .privacy_rights import export as privacy_export

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="MailSignal: email engagement tracking with human/machine labels.",
)
# Set up and run.
app.command()(server.version)
app.command()(server.init)
app.command()(server.serve)
app.command("ingest")(server.ingest)
app.command()(server.demo)
# People and keys.
app.add_typer(users.users_app, name="users")
app.add_typer(users.org_app, name="org")
app.add_typer(users.keys_app, name="keys")
app.add_typer(teams.teams_app, name="teams")
app.add_typer(audit_app, name="audit")
app.add_typer(privacy_app, name="privacy")  # recipients' privacy (issue 13)
privacy_app.command("notice")(privacy_notice)  # the operator's notice paragraph
privacy_app.command("consent")(privacy_consent)  # record a recipient's consent
privacy_app.command("consent-import")(privacy_consent_import)  # consents from CSV
privacy_app.command("consent-history")(privacy_consent_history)  # proof of consent
privacy_app.command("minimise")(privacy_minimise)  # ip_storage on stored events
privacy_app.command("retention")(privacy_retention)  # the retention run, now
privacy_app.command("export")(privacy_export)  # right of access
privacy_app.command("erase")(privacy_erase)  # right to erasure
# Contacts, leads and accounts (and `import contacts|leads|accounts`).
records.mount(app, history.import_app)
# Mail and what it became.
app.add_typer(emails.emails_app, name="emails")
app.add_typer(emails.events_app, name="events")
app.command("classify")(scores.classify)
app.command("score")(scores.score)
app.add_typer(scores.report_app, name="report")
app.add_typer(views.views_app, name="views")
# History in, data out, lookup lists.
app.add_typer(history.import_app, name="import")
app.add_typer(history.export_app, name="export")
app.add_typer(data.data_app, name="data")
# The relay and reply sync.
app.command("relay")(relay.relay)
app.add_typer(relay.outbound_app, name="outbound")
app.add_typer(mail.mailbox_app, name="mailbox")
app.command("sync-replies")(mail.sync_replies)


def main() -> None:
    try:
        app(standalone_mode=True)
    except MailSignalError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise SystemExit(2) from None
