"""`flask twilio configure-number`: point a Twilio number's webhooks at this app."""

from __future__ import annotations

from urllib.parse import urlsplit

import click
from flask import current_app
from flask.cli import AppGroup

from callcenter.phones import to_e164
from callcenter.telephony import TelephonyError, TelephonyUnavailable, get_telephony

twilio_cli = AppGroup("twilio", help="Connect the app to your Twilio account.")


def webhook_urls(base_url: str) -> dict[str, str]:
    base = base_url.rstrip("/")
    return {"voice_url": f"{base}/voice/incoming", "sms_url": f"{base}/sms/incoming",
            "status_callback": f"{base}/voice/status"}


@twilio_cli.command("configure-number")
@click.argument("phone_number")
@click.option("--base-url", default=None, help="The app's public URL (default: PUBLIC_BASE_URL).")
def configure_number_command(phone_number: str, base_url: str | None) -> None:
    """Set PHONE_NUMBER's Voice, Messaging and call-status webhooks to this app's public URL."""
    if not current_app.config.get("TWILIO_ACCOUNT_SID") or not current_app.config.get("TWILIO_AUTH_TOKEN"):
        raise click.ClickException("set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (in .env): the number is "
                                   "changed in that account")
    base_url = base_url or current_app.config.get("PUBLIC_BASE_URL")
    if not base_url:
        raise click.ClickException("set PUBLIC_BASE_URL (your ngrok https URL) or pass --base-url")
    parsed = urlsplit(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.query:
        raise click.ClickException(f"{base_url!r} is not the app's public URL: give it as https://abc.ngrok.app")
    number = to_e164(phone_number)
    if number is None:
        raise click.ClickException(f"{phone_number!r} is not a phone number")
    urls = webhook_urls(base_url)
    voice = _voice_settings()
    try:
        sid = get_telephony().configure_number(number, **urls)
        if voice is not None:  # callers wait in this queue: sized now, or <Enqueue> makes it Twilio's default size
            get_telephony().size_queue(voice.queue_name, voice.queue_max_size)
    except TelephonyUnavailable as err:  # the command is safe to run again: it sets the same URLs
        raise click.ClickException(f"{err}; run the command again") from None
    except TelephonyError as err:
        raise click.ClickException(f"Twilio refused: {err} (code {err.code})") from None
    click.echo(f"{number} ({sid}) now sends:")
    click.echo(f"  calls to          {urls['voice_url']}")
    click.echo(f"  texts to          {urls['sms_url']}")
    click.echo(f"  call status to    {urls['status_callback']}")
    if voice is not None:
        click.echo(f"Callers wait in queue {voice.queue_name!r}, which holds {voice.queue_max_size} "
                   "(voice.queue_max_size; the next caller goes to voicemail).")


def _voice_settings():
    """The contact center's voice settings, from its file (loaded or not: the queue is Twilio's)."""
    from callcenter.contact_center import NotLoaded, SpecError, read_spec

    try:
        return read_spec(current_app.config.get("CONTACT_CENTER_FILE") or "contact-center.toml").voice
    except (NotLoaded, SpecError, OSError) as err:
        click.echo(f"Not sizing the callers' queue: {err}", err=True)
        return None
