"""Reading the TwiML the app returns: parsing, relative URLs, and how long spoken words take."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import urljoin

from callcenter.simulator.calls import ApplicationError

VOICE_VERBS = {"Say", "Play", "Pause", "Gather", "Enqueue", "Leave", "Dial", "Redirect", "Record", "Hangup",
               "Reject"}
# Twilio accepts only these in the TwiML of an <Enqueue waitUrl> and of a <Queue url> (played to the dequeued caller).
WAIT_VERBS = {"Say", "Play", "Pause", "Gather", "Redirect", "Leave", "Hangup"}
WHISPER_VERBS = {"Say", "Play", "Pause", "Redirect"}
WORDS_PER_SECOND = 2.5


@dataclass
class Document:
    """A TwiML document and the URL it came from (relative URLs in it resolve against that URL)."""

    url: str
    verbs: list[ET.Element]

    def resolve(self, url: str | None) -> str | None:
        if url is None or url == "":
            return None
        return urljoin(self.url, url.strip())


def parse(body: str, url: str) -> Document:
    try:
        root = ET.fromstring(body.strip().encode())
    except ET.ParseError as error:
        raise ApplicationError(12100, f"Document parse failure: {error}") from None
    if root.tag != "Response":
        raise ApplicationError(12100, f"Document parse failure: the root element is <{root.tag}>, not <Response>")
    for verb in root:
        if verb.tag not in VOICE_VERBS and verb.tag != "Message":
            raise ApplicationError(12200, f"Schema validation warning: <{verb.tag}> is not a TwiML verb")
    return Document(url, list(root))


def text(element: ET.Element) -> str:
    return (element.text or "").strip()


def attr(element: ET.Element, name: str, default: str | None = None) -> str | None:
    return element.attrib.get(name, default)


def flag(element: ET.Element, name: str, default: bool) -> bool:
    value = element.attrib.get(name)
    return default if value is None else value.strip().lower() == "true"


def number(element: ET.Element, name: str, default: float) -> float:
    try:
        return float(element.attrib.get(name, default))
    except ValueError:
        return default


def loops(element: ET.Element) -> int:
    """`loop` of Say/Play: 0 means forever (returned as -1)."""
    count = int(number(element, "loop", 1))
    return -1 if count <= 0 else count


def say_seconds(words: str) -> float:
    return float(max(1, math.ceil(len(words.split()) / WORDS_PER_SECOND)))


def describe(element: ET.Element) -> dict:
    """A verb as a log entry: name, attributes, text and nested nouns."""
    entry: dict = {"verb": element.tag}
    if element.attrib:
        entry["attributes"] = dict(element.attrib)
    if text(element):
        entry["text"] = text(element)
    children = [{"noun": child.tag, "text": text(child), **({"attributes": dict(child.attrib)} if child.attrib else {})}
                for child in element]
    if children:
        entry["nested"] = children
    return entry
