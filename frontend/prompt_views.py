"""The prompts page: paste or upload prompts, see the campaign's latest ones.

Thin: the prompt import service parses, checks (line-numbered errors) and writes.
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from annotate.access import MANAGERS, campaign_get_for_user
from annotate.prompt_length import CLIP_MAX_TOKENS, MAX_PROMPT_CHARS, clip_tokens_estimate
from annotate.selectors import campaign_prompts_page
from annotate.services.prompts import prompt_rows_parse, prompts_add
from frontend.prompt_forms import PromptsPasteForm, PromptsUploadForm
from pickwise.errors import ApplicationError

FILE_TOO_LARGE = "The file has {size} bytes; the limit is {limit}."
NO_FORMAT = "Say the file's format, or give it a .txt, .csv, .json or .jsonl name."


def _page(request, campaign, *, paste=None, upload=None, error=None, status=200):
    listing = campaign_prompts_page(campaign=campaign)
    for prompt in listing["latest"]:
        prompt.tokens = clip_tokens_estimate(prompt.text)
        prompt.truncated = prompt.tokens > CLIP_MAX_TOKENS
    context = {
        "campaign": campaign,
        "listing": listing,
        "paste": paste or PromptsPasteForm(),
        "upload": upload or PromptsUploadForm(),
        "error": error,
        "max_chars": MAX_PROMPT_CHARS,
        "clip_tokens": CLIP_MAX_TOKENS,
        "max_prompts": settings.PICKWISE_MAX_PROMPTS_PER_IMPORT,
    }
    return render(request, "frontend/prompts.html", context, status=status)


def _campaign(request, campaign_id: int):
    return campaign_get_for_user(user=request.user, campaign_id=campaign_id, roles=MANAGERS)


def _add(request, campaign, *, data: bytes, fmt: str, forms: dict):
    try:
        rows = prompt_rows_parse(data=data, fmt=fmt)
        result = prompts_add(campaign=campaign, rows=rows)
    except ApplicationError as error:
        return _page(request, campaign, error=error, status=error.status, **forms)
    long_ones = sum(clip_tokens_estimate(row.text) > CLIP_MAX_TOKENS for row in rows)
    messages.success(
        request,
        _("%(created)s prompts added; %(existing)s were there already.")
        % {"created": result.created, "existing": result.existing},
    )
    if long_ones:
        messages.warning(
            request,
            _(
                "%(count)s of them probably run past the %(tokens)s tokens a CLIP text encoder "
                "reads; it ignores the rest."
            )
            % {"count": long_ones, "tokens": CLIP_MAX_TOKENS},
        )
    return redirect("frontend:campaign-prompts", campaign.pk)


@login_required
@require_GET
def prompts(request, campaign_id: int):
    return _page(request, _campaign(request, campaign_id))


@login_required
@require_POST
def prompts_paste(request, campaign_id: int):
    campaign = _campaign(request, campaign_id)
    form = PromptsPasteForm(request.POST)
    if not form.is_valid():
        return _page(request, campaign, paste=form, status=400)
    data = form.cleaned_data["text"].encode()
    return _add(request, campaign, data=data, fmt="txt", forms={"paste": form})


@login_required
@require_POST
def prompts_upload(request, campaign_id: int):
    campaign = _campaign(request, campaign_id)
    form = PromptsUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _page(request, campaign, upload=form, status=400)
    upload = form.cleaned_data["file"]
    limit = settings.PICKWISE_MAX_UPLOAD_BYTES
    if upload.size > limit:
        form.add_error("file", FILE_TOO_LARGE.format(size=upload.size, limit=limit))
        return _page(request, campaign, upload=form, status=413)
    fmt = form.cleaned_data["format"] or upload.name.rsplit(".", 1)[-1].lower()
    if "." not in upload.name and not form.cleaned_data["format"]:
        form.add_error("format", NO_FORMAT)
        return _page(request, campaign, upload=form, status=400)
    return _add(request, campaign, data=upload.read(), fmt=fmt, forms={"upload": form})
