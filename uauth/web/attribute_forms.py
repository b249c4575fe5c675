"""The forms for profile attributes (:mod:`uauth.core.attributes`): one field per attribute.

WTForms validates; flask-wtf adds the CSRF token. Used by the required-attributes step of
``/authorize`` and the profile form on ``/account``.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from flask_wtf import FlaskForm
from wtforms import DateField
from wtforms import EmailField
from wtforms import Field
from wtforms import SelectField
from wtforms import StringField
from wtforms import TelField
from wtforms import TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Email
from wtforms.validators import Length
from wtforms.validators import Optional
from wtforms.validators import Regexp
from wtforms.validators import StopValidation
from wtforms.validators import ValidationError

from uauth.core.attributes import FORM_PREFIX
from uauth.core.attributes import Attribute
from uauth.core.attributes import display

#: E.164 with readable separators: "+44 20 7946 0958", "+1 (425) 555-1212" (OIDC Core §5.1).
_PHONE = re.compile(r"^\+[1-9][0-9 ().\-]{5,24}$")


def _phone(form: Any, field: Field) -> None:
    value = (field.data or "").strip()
    digits = sum(ch.isdigit() for ch in value)
    if value and (not _PHONE.match(value) or not 7 <= digits <= 15):
        raise ValidationError("Enter the number in international format, e.g. +44 20 7946 0958.")


def _in_the_past(form: Any, field: Field) -> None:
    if field.data is None:
        return
    today = datetime.date.today()
    if not datetime.date(1900, 1, 1) <= field.data < today:
        raise ValidationError("Enter a date in the past, e.g. 1990-04-23.")


class _Present:
    """Required: something other than blanks was sent. Unlike ``DataRequired`` it keeps a
    malformed value's own error ("Not a valid date value") instead of "Enter your …"."""

    field_flags = {"required": True}

    def __init__(self, message: str) -> None:
        self.message = message

    def __call__(self, form: Any, field: Field) -> None:
        if not field.raw_data or not str(field.raw_data[0]).strip():
            field.errors[:] = []
            raise StopValidation(self.message)


def _field(attribute: Attribute, required: bool) -> Field:
    presence = (_Present(f"Enter your {attribute.label.lower()}.") if required
                else Optional())
    kw: dict[str, Any] = {"description": attribute.help or ""}
    length = Length(max=attribute.max_length,
                    message=f"Use at most {attribute.max_length} characters.")
    if attribute.type == "email":
        return EmailField(attribute.label, [presence, length, Email(
            message="Enter an email address like name@example.com.")],
            render_kw={"autocomplete": "email"}, **kw)
    if attribute.type == "phone":
        return TelField(attribute.label, [presence, length, _phone],
                        render_kw={"autocomplete": "tel"}, **kw)
    if attribute.type == "date":
        dated = [presence, _in_the_past] if attribute.past else [presence]
        return DateField(attribute.label, dated, format="%Y-%m-%d",
                         render_kw={"autocomplete": "bday"} if attribute.past else {}, **kw)
    if attribute.type == "choice":
        options = [SelectChoice(value, label) for value, label in (("", "Choose…"),
                                                                   *attribute.choices)]
        return SelectField(attribute.label, [presence], choices=options, **kw)
    checks: list[Any] = [presence, length]
    if attribute.pattern:
        checks.append(Regexp(rf"^(?:{attribute.pattern})\Z", message=(
            f"Use the expected format: {attribute.help}." if attribute.help
            else f"Enter a valid {attribute.label.lower()}.")))
    render_kw = {"autocomplete": _AUTOCOMPLETE.get(attribute.name, "on")}
    field_class = TextAreaField if attribute.multiline else StringField
    return field_class(attribute.label, checks, render_kw=render_kw, **kw)


_AUTOCOMPLETE = {"name": "name", "given_name": "given-name", "family_name": "family-name",
                 "nickname": "nickname", "address": "street-address", "locale": "language"}


@lru_cache(maxsize=64)
def form_class(attributes: tuple[Attribute, ...], required: frozenset[str]) -> type[FlaskForm]:
    """A FlaskForm (CSRF included) with one field per attribute; built once per shape."""
    fields = {a.name: _field(a, a.name in required) for a in attributes}
    return type("AttributeForm", (FlaskForm,), fields)


def make_form(attributes: Iterable[Attribute], profile: Mapping[str, Any], *,
              required: Iterable[str] = (), submitted: bool = True) -> FlaskForm:
    """The form for ``attributes``, filled from ``profile``, or from what was sent when
    ``submitted`` (flask-wtf reads the request's form)."""
    chosen = tuple(attributes)
    cls = form_class(chosen, frozenset(required))
    initial = {a.name: _form_value(a, profile) for a in chosen}
    if submitted:
        return cls(prefix=FORM_PREFIX, data=initial)
    return cls(prefix=FORM_PREFIX, data=initial, formdata=None)


def _form_value(attribute: Attribute, profile: Mapping[str, Any]) -> Any:
    value = profile.get(attribute.name)
    if attribute.type == "date" and isinstance(value, str):
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, Mapping):
        return value.get("formatted") or display(profile, attribute)
    return value


def submitted(form: FlaskForm, attributes: Iterable[Attribute], profile: Mapping[str, Any]
              ) -> dict[str, Any]:
    """The changes a validated form makes to ``profile``: ISO dates, trimmed text, address as
    an object; a field left as it was shown changes nothing (a structured address stays so)."""
    values: dict[str, Any] = {}
    for attribute in attributes:
        data = form[attribute.name].data
        shown = _form_value(attribute, profile)
        if data == shown or (isinstance(data, str) and data.strip() == (shown or "")):
            continue
        if isinstance(data, datetime.date):
            data = data.isoformat()
        elif isinstance(data, str):
            data = data.strip()
        if attribute.name == "address" and data:
            data = {"formatted": data}
        values[attribute.name] = data or None
    return values
