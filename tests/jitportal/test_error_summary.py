"""The error summary's words and links (``{% error_summary %}``): a heading that says what happened and how many
problems, each field's error a link to the field where the page shows it, else a plain word that it is elsewhere and
the way to it."""
from __future__ import annotations

import re

from django import forms
from django.template import Context, Template


class TicketForm(forms.Form):
    summary = forms.CharField(label="Summary")
    due = forms.DateField(label="Due")
    kind = forms.ChoiceField(label="Kind", choices=[("bug", "Bug"), ("task", "Task")], widget=forms.RadioSelect)

    def clean(self):
        data = super().clean()
        self.add_error(None, "Tickets are closed for the week.")
        return data


def render(tag: str, **context) -> str:
    return Template("{% load error_summary %}" + tag).render(Context(context))


def heading(html: str) -> str:
    return re.search(r'<h2 class="error-summary-title" id="[^"]*">(.*?)</h2>', html).group(1)


def items(html: str) -> list[str]:
    return re.findall(r"<li[^>]*>(.*?)</li>", html)


def test_the_heading_says_there_is_a_problem_and_counts_them():
    one = render("{% error_summary errors=errors %}", errors=["Choose Approve or Deny."])
    assert heading(one) == "There is a problem with this form"
    three = TicketForm({"summary": "", "due": "someday", "kind": "idea"})
    html = render("{% error_summary form %}", form=three)
    assert heading(html) == "There are 4 problems with this form" and len(items(html)) == 4
    assert "Please correct" not in html
    assert heading(render('{% error_summary errors=errors about="your decision" %}', errors=["a", "b"])) == \
        "There are 2 problems with your decision"


def test_nothing_is_shown_without_an_error():
    assert render("{% error_summary form %}", form=TicketForm()).strip() == ""
    assert render("{% error_summary errors=errors %}", errors=[]).strip() == ""


def test_each_fields_error_links_to_the_field_a_groups_to_its_first_option():
    html = render("{% error_summary form %}", form=TicketForm({"summary": "", "due": "someday", "kind": "idea"}))
    assert items(html) == [
        "Tickets are closed for the week.",
        '<a href="#id_summary">Summary: This field is required.</a>',
        '<a href="#id_due">Due: Enter a valid date.</a>',
        '<a href="#id_kind_0">Kind: Select a valid choice. idea is not one of the available choices.</a>']


def test_a_form_written_by_hand_links_the_fields_it_shows_and_says_where_the_others_are():
    form = TicketForm({"summary": "", "due": "someday", "kind": "bug"})
    html = render('{% error_summary form fields=shown elsewhere=url elsewhere_text="change it in the full form" %}',
                  form=form, shown={"summary": "quick-summary"}, url="/tickets/new/?from=quick&x=<1>")
    assert items(html) == [
        "Tickets are closed for the week.",
        '<a href="#quick-summary">Summary: This field is required.</a>',
        'Due: Enter a valid date. “Due” is not on this page: '
        '<a href="/tickets/new/?from=quick&amp;x=&lt;1&gt;">change it in the full form</a>.']
    without_a_way = render("{% error_summary form fields=shown %}", form=form, shown={})
    assert 'Due: Enter a valid date. “Due” is not on this page.' in items(without_a_way)


def test_a_filter_forms_errors_link_to_their_controls_and_say_the_filter_was_left_out():
    form = TicketForm({"summary": "x", "due": "someday", "kind": "bug"})
    html = render('{% error_summary form filter_note=True summary_id="filter-errors" %}', form=form)
    assert heading(html) == "There are 2 problems with the filters"
    assert '<li id="id_due_error"><a href="#id_due">Due: Enter a valid date.</a> The filter was left out.</li>' in html
    assert 'id="filter-errors" role="alert" tabindex="-1" data-error-summary' in html


def test_an_error_given_with_its_place_on_the_page_links_there():
    html = render("{% error_summary errors=errors %}", errors=[("Source: 'x' is not one of the sources.", "#sources")])
    assert items(html) == ['<a href="#sources">Source: &#x27;x&#x27; is not one of the sources.</a>']
