"""Markdown for campaign instructions, sanitised so a campaign cannot run script in a page."""

import markdown as markdown_lib
import nh3
from django import template
from django.utils.safestring import mark_safe

register = template.Library()

# nh3's defaults drop <script>, event handlers, javascript: URLs and style; we also leave out
# images so instructions cannot make readers' browsers fetch third-party URLs.
_ALLOWED_TAGS = nh3.ALLOWED_TAGS - {"img"}


@register.filter(name="markdown")
def render_markdown(text: str | None) -> str:
    html = markdown_lib.markdown(text or "", extensions=["extra", "sane_lists"])
    return mark_safe(nh3.clean(html, tags=_ALLOWED_TAGS))  # noqa: S308  (sanitised just above)
