"""XML in and out of the WeChat family's callbacks, safely.

Incoming callback XML is parsed with defusedxml and any DTD is refused outright: WeChat never sends one,
so a body with ``<!DOCTYPE`` or an entity declaration is hostile (billion laughs, external entities) and is
rejected before anything is expanded. Bodies are already capped at 64 KB by the caller, so memory and
parsing time stay bounded; nesting is bounded too (:data:`MAX_XML_DEPTH`: WeChat's messages are flat, its
events three or four levels deep), so nothing that walks the document later recurses far. Only after these
checks does the XML reach wechatpy's own parser.

Outgoing XML is built by wechatpy, which puts text into CDATA sections without escaping; the resident's
own words can appear in a reply (the appeal summary), so text is made CDATA-safe here first.
"""

from __future__ import annotations

import re
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

MAX_XML_DEPTH = 16
"""Deepest element nesting accepted, the ``<xml>`` root being 1 (``<SendPicsInfo><PicList><item>…`` is 5)."""


class BadXML(ValueError):
    """The body is not acceptable XML (malformed, or it declares a DTD or entities)."""


def parse_xml(body: bytes | str) -> dict[str, str]:
    """The child elements of a WeChat ``<xml>`` document as a flat ``{tag: text}`` mapping.

    Raises :class:`BadXML` for malformed XML, any DTD or entity declaration, elements nested deeper than
    :data:`MAX_XML_DEPTH`, or a root that is not ``<xml>``.
    """
    try:
        root: Element = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise BadXML(f"the body is not acceptable XML: {exc.__class__.__name__}") from None
    if root.tag != "xml":
        raise BadXML("the XML root element must be <xml>")
    if _deeper_than(root, MAX_XML_DEPTH):
        raise BadXML(f"the XML nests deeper than {MAX_XML_DEPTH} levels")
    return {child.tag: (child.text or "") for child in root}


def _deeper_than(root: Element, limit: int) -> bool:
    # Iterative, and it stops at the first element past the limit: a 64 KB chain of <a><a><a>… is
    # refused after ``limit`` steps.
    stack = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in element)
    return False


# Characters XML 1.0 cannot carry at all; a resident's pasted binary garbage must not break a reply.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def cdata_safe(text: str) -> str:
    """``text`` that survives being put between ``<![CDATA[`` and ``]]>`` unchanged for the reader."""
    return _NOT_XML.sub("", text).replace("]]>", "]]]]><![CDATA[>")
