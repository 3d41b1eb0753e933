"""Luma U's two tracks as data: each lesson in Markdown (rendered with HTML disabled), each quiz
question with its options, the right one and why.

The lessons teach this product as it is (README.md and the pages themselves): when a page changes,
change its lesson here. A lesson's ``slug`` and a question's ``id`` and options' ids are stored in
progress rows and sent by the quiz form, so keep them once published; reword freely.

A member's track follows their role: sub-account users take ``STAFF_TRACK``, managers and
administrators ``MANAGERS_TRACK`` (``track_for_role``).
"""

from __future__ import annotations

from dataclasses import dataclass

from org_profile.enums import Role


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    options: tuple[tuple[str, str], ...]  # (option id, text), in the order written
    correct: str  # the right option's id
    explanation: str  # why, shown when the answer was wrong

    def option_text(self, option_id: str) -> str:
        return dict(self.options).get(option_id, "")


@dataclass(frozen=True)
class Lesson:
    slug: str
    title: str
    minutes: int
    body: str  # Markdown
    questions: tuple[Question, ...]


@dataclass(frozen=True)
class Track:
    slug: str
    title: str
    audience: str
    summary: str
    lessons: tuple[Lesson, ...]

    def lesson(self, slug: str) -> Lesson | None:
        return next((lesson for lesson in self.lessons if lesson.slug == slug), None)


def _q(id: str, text: str, options: dict[str, str], correct: str, explanation: str) -> Question:
    return Question(id=id, text=text, options=tuple(options.items()), correct=correct, explanation=explanation)


# --- Sub-account users ------------------------------------------------------------------------

_HUB = Lesson(
    slug="the-hub",
    title="Finding a patient in the Hub",
    minutes=3,
    body="""
The **Hub** (in the header) is the list of your clinic's patients. Start there whenever a patient
calls, checks in or needs to pay.

The search box is forgiving: it ignores case and accents ("garcia" finds García), and takes a name
as "First Last" or as the Hub shows it ("García, Jorge"), a part of a name, the patient's EHR id,
an e-mail address or a phone number. Open a patient to see their profile: contact details,
appointments, balance and payments.

On a phone the Hub's table becomes a list of cards, each with its own **Request payment** button.

Every page that shows a patient's details records who looked, when and from where (the PHI access
log). Open a patient's profile because you need it for your work, not out of curiosity: an
administrator can see **Who looked at this patient**.
""",
    questions=(
        _q("accents", "A patient's name is García. What finds them in the Hub?",
           {"a": "Only “García” typed with the accent",
            "b": "“garcia”, “García, Jorge” or their phone number",
            "c": "Only their EHR id"},
           "b", "The Hub's search ignores case and accents and also takes “Last, First”, e-mail addresses, phones and EHR ids."),
        _q("logged", "What happens when you open a patient's profile?",
           {"a": "Nothing is recorded",
            "b": "Your look is recorded in the PHI access log: who, when, from where",
            "c": "The patient receives an e-mail"},
           "b", "Every page that shows a patient's details is recorded in the PHI access log, and administrators can see who looked."),
    ),
)

_REQUEST = Lesson(
    slug="sending-a-payment-request",
    title="Sending a payment request",
    minutes=4,
    body="""
From a patient's profile (or a card in the Hub) choose **Request payment**. The form asks for:

- the **amount**;
- the **kind**: copay, balance or other;
- the **billing item**: what the patient pays for, as it reads on their statement, such as
  "Office visit copay";
- the **location**: you can only choose your own locations;
- optionally an **appointment** (its copay fills in the amount) and a **note to the patient**.

When you send, the request goes out by e-mail and, if the patient consented to text messages, by
SMS, with a link to pay. The request's page then shows each e-mail and SMS delivery and its history
in words. The transaction appears on the **Dashboard**.

The note is shown to the patient on the payment page. Keep it practical ("Your copay for the visit
of March 3"). Never write a diagnosis in it (the form says so too).
""",
    questions=(
        _q("sms", "When does a payment request go out by SMS?",
           {"a": "Always", "b": "When the patient consented to text messages", "c": "Never: only by e-mail"},
           "b", "The request is always e-mailed; it is also texted only when the patient consented to texts."),
        _q("billing-item", "What belongs in the billing item?",
           {"a": "What the patient pays for, as it reads on their statement (“Office visit copay”)",
            "b": "The diagnosis code of the visit",
            "c": "The patient's date of birth"},
           "a", "The billing item names what is paid for in words a statement can show; never clinical details."),
        _q("locations", "Which locations can a sub-account user choose for a request?",
           {"a": "Any location of the organization", "b": "Only their own locations", "c": "None: a manager chooses"},
           "b", "Sub-account users work at their own locations only; the form offers just those."),
    ),
)

_PATIENT = Lesson(
    slug="what-the-patient-sees",
    title="What the patient sees",
    minutes=3,
    body="""
Patients need no account. The link in their e-mail or text message opens a page that shows your
clinic's name and asks for the patient's **date of birth** before it shows anything else. Only then
do they see the amount and the reason, and go to checkout.

Checkout is the payment processor's own hosted page: card numbers never reach LumaPay. After paying,
the confirmation page shows the receipt, which the patient can download, and the receipt is
e-mailed to them when they have an e-mail address, in their language (English or Spanish).

A link does not last for ever: an expired link tells the patient to ask the clinic for a new one,
and the unpaid request stays on record. Too many wrong dates of birth lock the link for a while
(the next lesson says what to do).
""",
    questions=(
        _q("dob", "What does the payment page ask before it shows the amount?",
           {"a": "The patient's password", "b": "The patient's date of birth", "c": "The card number"},
           "b", "A payment link is protected by the date of birth: nothing is shown before the patient enters it."),
        _q("cards", "Where does the patient type their card number?",
           {"a": "On the processor's hosted checkout page, never on LumaPay's servers",
            "b": "In a reply to the request e-mail",
            "c": "On the phone with the front desk, who types it into LumaPay"},
           "a", "No card data ever reaches LumaPay: only the processor's hosted page sees card numbers."),
    ),
)

_RESEND = Lesson(
    slug="resend-cancel-locked-link",
    title="Re-send, cancel, and a locked link",
    minutes=4,
    body="""
A payment request's page shows the request and what happened to it. While it awaits payment:

- **Re-send** sends the same link again to the patient's *current* e-mail address and phone, and
  gives it a fresh lifetime. Fix a wrong address on the patient's profile first, then re-send.
- **Cancel this request…** opens a confirmation page, with an optional reason for the history.
  Nothing changes until **Yes, cancel the request**. The link then stops working, and the request
  stays on record as cancelled.

**A locked link.** After too many wrong dates of birth the link locks for a while, and the request
reads **Link locked** with the time it unlocks, in the clinic's time zone. Re-send is refused while
it is locked (it would send the locked link).

As a sub-account user you see the lock and ask a **manager**: after checking the date of birth
with the patient, they either unlock the link or send a fresh one (the old link stops working at
once). Both are recorded with who did it.
""",
    questions=(
        _q("locked", "A patient's link is locked after wrong dates of birth. What do you do?",
           {"a": "Re-send the same link", "b": "Ask a manager, who checks with the patient and unlocks it or sends a fresh link",
            "c": "Cancel the request and tell the patient to pay by phone"},
           "b", "Re-send is refused while a link is locked; managers and administrators unlock it or send a fresh link."),
        _q("cancel", "What happens when a request is cancelled?",
           {"a": "It is deleted", "b": "The link stops working and the request stays on record as cancelled",
            "c": "The patient is refunded"},
           "b", "Nothing is deleted: the request stays on record as cancelled, with the reason you gave."),
        _q("resend", "Where does Re-send send the link?",
           {"a": "To the e-mail address and phone on the patient's profile now",
            "b": "To the address used the first time, whatever the profile says now",
            "c": "To the clinic's own e-mail address"},
           "a", "Re-send uses the patient's current contact details, so correct the profile first."),
    ),
)

_RECEIPTS = Lesson(
    slug="receipts",
    title="Receipts",
    minutes=2,
    body="""
Every paid transaction has a PDF receipt: the clinic's public name, address and contacts, the
patient's name, the date and time of payment in the clinic's time zone, the amount, the status
with any refunds, the processor, the card, the authorization code, and a reference (the
transaction number and the processor's charge id).

It **never** shows the visit's reason or the request's note: a receipt is a document the patient
may hand to anyone.

Staff download or print it from the transaction's page. The patient downloads it from the
confirmation page (after their date of birth) and gets it attached to the receipt e-mail, in their
language. Downloading a receipt is recorded in the PHI access log.
""",
    questions=(
        _q("never", "Which of these never appears on a receipt?",
           {"a": "The amount paid", "b": "The visit's reason or the request's note", "c": "The clinic's public name"},
           "b", "Receipts leave out the visit's reason and the note: only what was paid, when, how and to whom."),
        _q("where", "Where do staff get a receipt?",
           {"a": "From the transaction's page", "b": "Only by asking the patient to forward it", "c": "From the Upload Center"},
           "a", "The transaction's page has the receipt to download or print."),
    ),
)

_DASHBOARD = Lesson(
    slug="dashboard-and-timeline",
    title="The dashboard and a transaction's timeline",
    minutes=4,
    body="""
The **Dashboard** lists the transactions you may see (sub-account users: their locations only),
newest first, 25 at a time. Filter by patient, created dates and status; **More filters** adds paid
dates, amounts, vendor, card brand, errors, kind, location and billing item. Filters live in the
address, so a filtered view can be bookmarked or shared, and each one shows as a chip you can
remove. Totals and a chart of collections sit above the list.

A red **Error** flag marks an *unresolved problem*: a declined charge, a failed refund or an
undelivered link that no later success fixed.

Open a transaction to see its **timeline**, oldest first, in the clinic's time zone: the request
sent, each e-mail or SMS delivered or not, the link opened, each date-of-birth answer, checkout,
card attempts, the payment, the receipt, refunds and exports. Each entry names who acted: a staff
member, "Patient (IP address)", "Payment processor" or "LumaPay" when a rule acted by itself.
""",
    questions=(
        _q("error", "What does a red “Error” flag on a dashboard row mean?",
           {"a": "The patient has a balance", "b": "An unresolved problem: a failure no later success fixed",
            "c": "The transaction was refunded"},
           "b", "A failure stays a problem until a later success resolves it; resolved failures stay on the timeline as history."),
        _q("share", "How do you share a filtered dashboard view with a colleague?",
           {"a": "Copy the address: the filters are in it", "b": "Take a screenshot; filters cannot be shared",
            "c": "Export it to Excel and e-mail the file"},
           "a", "Filters live in the URL, so the address reproduces the same view (for someone allowed to see it)."),
        _q("actor", "A timeline entry's actor reads “LumaPay”. What does that mean?",
           {"a": "A staff member whose name is hidden", "b": "LumaPay acted by itself, for example by a collection rule",
            "c": "The patient acted"},
           "b", "Automatic actions name LumaPay as the actor, with the rule that acted."),
    ),
)

_PHI = Lesson(
    slug="phi-rules",
    title="PHI rules: what never to write in a note",
    minutes=3,
    body="""
Protected health information (PHI) is anything that ties a person to their health: a diagnosis,
a procedure, a visit's reason, a test result, a medication, together with who they are.

LumaPay keeps PHI away from where it does not belong: nothing about a patient goes to the payment
processor (only opaque ids), receipts leave out the visit's reason and the note, and no patient's
name, date of birth, e-mail or phone is written to a log. Help it:

- **A note to the patient** is shown on the payment page. Never write a diagnosis, a procedure,
  a visit's reason, a test result or a medication in it, nor the patient's date of birth (it is
  what protects the link) or a card number. "Copay for your visit of March 3" is enough.
- **Billing items** read like a statement line ("Office visit copay"), never a diagnosis.
- Do not copy patient details into e-mails, chat or support messages; share a transaction's number
  instead, which only your colleagues can open.
- Look only at the patients your work needs: every look is recorded. Sign out on shared computers
  (LumaPay also signs you out after a while without activity).
""",
    questions=(
        _q("note", "Which note to the patient is fine?",
           {"a": "“Copay for your visit of March 3”", "b": "“Follow-up for your diabetes, HbA1c 8.2”",
            "c": "“Date of birth on file: 04/12/1980”"},
           "a", "Notes are shown on the payment page: never a diagnosis or result, and never the date of birth that guards the link."),
        _q("colleague", "A colleague asks about a payment by e-mail. What do you send?",
           {"a": "The patient's name, date of birth and diagnosis", "b": "The transaction's number",
            "c": "A screenshot of the patient's profile"},
           "b", "A transaction number means nothing outside LumaPay; only members of your organization can open it."),
        _q("processor", "What does LumaPay send the payment processor about a patient?",
           {"a": "Their name and visit reason", "b": "Opaque ids only, never a name, birth date or diagnosis",
            "c": "Their full profile"},
           "b", "The processor signs no agreement to hold PHI, so it only ever gets opaque ids."),
    ),
)

STAFF_TRACK = Track(
    slug="clinic-staff",
    title="LumaPay for clinic staff",
    audience="Sub-account users",
    summary="Find patients, send and follow payment requests, help patients pay, and keep health information safe.",
    lessons=(_HUB, _REQUEST, _PATIENT, _RESEND, _RECEIPTS, _DASHBOARD, _PHI),
)


# --- Managers and administrators --------------------------------------------------------------

_GLANCE = Lesson(
    slug="the-day-to-day-at-a-glance",
    title="The day-to-day at a glance",
    minutes=4,
    body="""
Your team works in the **Hub** and on the **Dashboard**; you should know their path:

- **Requests.** From a patient (Hub → profile → **Request payment**): amount, kind, billing item,
  location, optionally an appointment and a note. It goes by e-mail, and by SMS with the patient's
  consent. **Re-send** uses the current contact details; **Cancel** keeps the request on record.
- **The patient** opens the link, enters their date of birth, pays on the processor's hosted page
  and gets a receipt (PDF, in English or Spanish). Receipts never show the visit's reason or note.
- **A locked link** (too many wrong dates of birth) is yours to handle: check the date of birth
  with the patient, then **Unlock the link** or **Send a fresh link** (the old one stops at once).
  Sub-account users can only see the lock.
- **The Dashboard** shows every location to you (sub-account users see theirs), with filters in
  the address, totals and the chart; a transaction's **timeline** shows everything, in the clinic's
  time zone, with who acted.
- **PHI:** no diagnosis or visit reason in notes or billing items; every look at a patient is
  recorded.
""",
    questions=(
        _q("unlock", "Who can unlock a locked payment link?",
           {"a": "Anyone in the organization", "b": "Managers and administrators, after checking with the patient",
            "c": "Only LumaPay's operators"},
           "b", "Sub-account users see the lock and ask a manager; managers and administrators unlock it or send a fresh link."),
        _q("fresh", "What happens to the old link when you send a fresh one?",
           {"a": "It keeps working for a day", "b": "It stops working at once", "c": "It is unlocked too"},
           "b", "A fresh link replaces the old one, which stops working immediately."),
    ),
)

_REFUNDS = Lesson(
    slug="refunds-and-who-may-refund",
    title="Refunds and who may refund",
    minutes=4,
    body="""
Refunds are made from the **transaction's page**, in full or in part, with a reason. The amount
field holds what is still refundable; type less for a partial refund, or press **Full amount** to
put the whole remainder back. **Review refund** shows "Refund $22.50 of $45.00" with the card and
what stays refundable; nothing happens until **Confirm refund**, and a double click refunds once.
A refund can never exceed what is left of the charge.

**Who may refund** is an organization setting (**Organization**, administrators): administrators
always, managers by default, sub-account users only if allowed.

A refund made in the clinic's own Stripe Dashboard still reaches LumaPay: it shows under
**Refunds** and on the timeline as "Refund made outside LumaPay", and counts against what stays
refundable. A failed refund is flagged as an error until a later refund of that amount succeeds.
""",
    questions=(
        _q("who", "By default, who may refund?",
           {"a": "Everyone", "b": "Administrators and managers; sub-account users only if the organization allows it",
            "c": "Administrators only, always"},
           "b", "Administrators always may; managers by default; sub-account users only when the setting allows them."),
        _q("confirm", "When is the money actually refunded?",
           {"a": "When you choose Review refund", "b": "When you choose Confirm refund", "c": "The next day, in a batch"},
           "b", "Review refund only shows what will happen; Confirm refund makes it (and a double click refunds once)."),
        _q("outside", "A colleague refunded $7.00 in the Stripe Dashboard. What does LumaPay do?",
           {"a": "Ignores it", "b": "Lists it as “Refund made outside LumaPay” and lowers what stays refundable",
            "c": "Refunds another $7.00 to match"},
           "b", "Every refund of a LumaPay payment reaches the ledger, whoever made it."),
    ),
)

_EXPORTS = Lesson(
    slug="exports",
    title="Excel exports",
    minutes=3,
    body="""
On the Dashboard, **Export** writes exactly the filtered set to Excel (.xlsx): real numbers and
dates in the clinic's time, a frozen header, and a second sheet listing the filters, who exported,
when and the row count. Managers and administrators can export; sub-account users cannot.

Up to 5,000 rows download at once; a larger export is written in the background while a progress
bar shows, and the file is kept for 24 hours, for the person who asked only.

An export holds patients' details, so it is recorded: every export and every download is an audit
event and a look at each patient in the file, and "Exported to Excel" appears on the timeline of
every transaction it held. Keep exports on clinic systems and delete them when done.
""",
    questions=(
        _q("what", "What does Export put in the file?",
           {"a": "Every transaction ever", "b": "Exactly the dashboard's filtered set", "c": "Only today's payments"},
           "b", "The export holds exactly the set the filters select, and lists those filters on its second sheet."),
        _q("large", "An export of 40,000 rows…",
           {"a": "is refused", "b": "is written in the background and kept 24 hours for the person who asked",
            "c": "is e-mailed to the whole team"},
           "b", "Large exports are written in the background behind a progress bar; the file is kept 24 hours for its requester only."),
    ),
)

_PAYOUTS = Lesson(
    slug="payouts-and-reconciliation",
    title="Payouts and reconciliation",
    minutes=4,
    body="""
**Payouts** (in the header, managers and administrators) shows the **balance** (available and
pending, and the next scheduled payout), what is **on the way to the bank**, and every payout,
newest first, with filters for amounts, created and arrival dates, status and method, a CSV export
of the filtered set, and totals.

A payout's page gives the bank account's last four digits, the **trace id** (give it to your bank
to find the deposit), the arrival date, a failure reason if any, and every line it carries:
payments, refunds, fees, disputes and adjustments, each linked to its transaction.

**Reconciliation:** LumaPay adds the lines up and compares them with the payout. The page says
whether they match, or by how much they do not. Payout pages name no patient: match them to your
bank by amount, date and trace id. Sub-account users see nothing of payouts.
""",
    questions=(
        _q("trace", "Your bank cannot find a deposit. What do you give them?",
           {"a": "The payout's trace id", "b": "A patient's name", "c": "The transaction's receipt"},
           "a", "The trace id is the bank network's reference for the deposit."),
        _q("difference", "A payout's page says its lines do not add up. What does it tell you?",
           {"a": "Nothing more", "b": "By how much the lines differ from the payout", "c": "Which patient caused it"},
           "b", "Reconciliation compares the lines' total with the payout and says the difference; payouts never name patients."),
    ),
)

_RULES = Lesson(
    slug="collection-rules-and-automation",
    title="Collection rules and automation",
    minutes=4,
    body="""
**Collection rules** (managers and administrators) let LumaPay ask for money by itself. Every rule
is off until someone turns it on, and saving sends nothing at once: LumaPay acts at its next pass,
within a minute.

- **Copay before the visit:** a request N hours before each booked visit with a copay (48 by
  default).
- **Hold instead, with a card on file:** the copay is held on the patient's saved card (24 hours
  before by default, at most 144) and captured at check-in.
- **Balances:** a request when a balance appears or grows above a threshold ($10 by default), with
  reminders on chosen days after it (3, 7 and 14 by default).
- **Quiet hours:** nothing is sent between 21:00 and 08:00 by default, in the clinic's time zone;
  what falls due waits.

**Automation** lists what LumaPay did today and what it will do tomorrow, and whether each rule is
on. Everything it does names **LumaPay** as the actor and "By the rule: …" in the history.
""",
    questions=(
        _q("save", "You turn on “Copay before the visit” and save. When does LumaPay act?",
           {"a": "Immediately, sending every request at once", "b": "At its next pass, within a minute, by the rule's lead time",
            "c": "Only after an administrator approves"},
           "b", "Saving sends nothing; LumaPay's next pass (every minute) applies the rule."),
        _q("quiet", "A reminder falls due at 22:30 with the default quiet hours. What happens?",
           {"a": "It is sent at 22:30", "b": "It waits until quiet hours end (08:00)", "c": "It is dropped"},
           "b", "Nothing is sent during quiet hours; what falls due waits for their end."),
        _q("tomorrow", "Where do you see what LumaPay will do tomorrow?",
           {"a": "The Automation page", "b": "The Upload Center", "c": "Nowhere"},
           "a", "Automation lists today's actions and tomorrow's planned requests, holds, reminders and instalments."),
    ),
)

_EHR = Lesson(
    slug="ehr-connections-and-uploads",
    title="EHR connections and the Upload Center",
    minutes=4,
    body="""
Patients, appointments and balances reach LumaPay from your EHR or from files.

**EHR connections** (administrators only): a FHIR R4 server, an HL7 v2 feed over MLLP, or an SFTP
drop folder. Secrets (tokens, keys, passwords) are encrypted and never shown again; leave a field
empty to keep one. Opening the form asks for your password again, and every change is audited.

**Upload Center** (managers and administrators) imports **patients**, **appointments**, and
**balances and copays** from CSV or Excel:

1. Download the template for what the file holds, and fill it in.
2. Upload it. Nothing is written yet: the preview lists each problem by row, column and value.
3. **Import the valid rows**, **Import all or nothing** (when no row has a problem), or **Discard**.

The import runs in the background behind a progress bar. A file already imported changes nothing
the second time, and formulas are never run.
""",
    questions=(
        _q("who", "Who can add an EHR connection?",
           {"a": "Administrators only", "b": "Managers and administrators", "c": "Everyone"},
           "a", "A connection holds the clinic's secrets and decides what enters patient records, so only administrators manage it."),
        _q("preview", "You upload a file. When is anything written?",
           {"a": "At once", "b": "Only after you choose an import on the preview", "c": "After an operator approves"},
           "b", "Uploading only checks the file; you choose Import (valid rows, or all or nothing) or Discard."),
        _q("again", "The same file is imported twice by mistake. What happens?",
           {"a": "Every patient is duplicated", "b": "The second import changes nothing", "c": "The first import is undone"},
           "b", "A file already imported says so on its preview, and importing it again changes nothing."),
    ),
)

_ORGANIZATION = Lesson(
    slug="the-organization-profile",
    title="The organization's settings and profile",
    minutes=3,
    body="""
Administrators open **Organization** in the header. The settings page decides **who may refund**,
who may charge or hold a **card on file** and the most one charge may take, after how many idle
minutes members are signed out, and whether **everyone** signs in in two steps. Every saved change
is recorded with its old and new values.

**Organization profile**, linked from it, keeps the legal information (legal name, business type,
EIN shown only as its last digits, registered address, industry code) and **what patients see**:
the public name, the logo, the support phone and e-mail, the website and the card-statement
descriptor. Keep these right: patients read them on the payment page and their receipt.

Managers and sub-account users cannot open either page.
""",
    questions=(
        _q("who", "Who can change who may refund?",
           {"a": "Managers", "b": "Administrators, on the organization settings page", "c": "Any member for themselves"},
           "b", "Organization settings are for administrators; each change is recorded with old and new values."),
        _q("patients", "Where do patients read your public name and support phone?",
           {"a": "On the payment page and their receipt", "b": "Nowhere", "c": "Only in the card statement"},
           "a", "The profile's “What patients see” feeds the payment page and the receipt."),
    ),
)

_SECURITY = Lesson(
    slug="security-settings",
    title="Security: two-step sign-in, idle sign-out, lockout, members",
    minutes=5,
    body="""
**Two-step sign-in.** Administrators and managers always sign in in two steps: the password, then
a 6-digit code from an authenticator app (or a backup code). An administrator can require it of
everyone. Set it up under **Security** (beside your e-mail address in the header); keep the 10
backup codes LumaPay shows once. Lost your phone? Sign in with a backup code and set up the new
phone. No codes left? An administrator resets your two-step sign-in under **Members**.

**Idle sign-out.** After the organization's idle minutes (15 by default, 5 to 60) without
activity, members are signed out, and every sign-in ends after 12 hours. A dialog warns a minute
before, with **Stay signed in**.

**Lockout.** 10 wrong passwords for one account, or 30 from one network address, within 30
minutes pause sign-in. An administrator unlocks a member under **Members**: check with the person
first, a lock can mean someone else was guessing.

**Members** lists everyone with their role and whether they set up two-step sign-in. Give each
person their own account and the smallest role their work needs.
""",
    questions=(
        _q("must", "Who must always sign in in two steps?",
           {"a": "Nobody unless they choose to", "b": "Administrators and managers", "c": "Only LumaPay's operators"},
           "b", "Administrators and managers always use two-step sign-in; an administrator can require it of everyone."),
        _q("lost", "A manager lost their phone and used every backup code. What now?",
           {"a": "An administrator resets their two-step sign-in under Members",
            "b": "They share a colleague's account", "c": "They turn two-step sign-in off themselves"},
           "a", "Members → Reset two-step sign-in removes the old app, and they set up a new one at the next sign-in."),
        _q("locked", "A member's sign-in is locked. What should the administrator do first?",
           {"a": "Unlock at once", "b": "Check with the person: someone else may have been guessing",
            "c": "Delete the account"},
           "b", "A lock can mean an attack; confirm with the member before choosing Unlock."),
    ),
)

MANAGERS_TRACK = Track(
    slug="managers",
    title="LumaPay for managers and administrators",
    audience="Managers and administrators",
    summary="Everything your team does at a glance, plus refunds, exports, payouts, automation, data coming in, "
    "the organization's settings and security.",
    lessons=(_GLANCE, _REFUNDS, _EXPORTS, _PAYOUTS, _RULES, _EHR, _ORGANIZATION, _SECURITY),
)

TRACKS = {track.slug: track for track in (STAFF_TRACK, MANAGERS_TRACK)}


def track_for_role(role: str) -> Track:
    """Sub-account users take the staff track; managers and administrators the managers' one."""
    return STAFF_TRACK if role == Role.STAFF else MANAGERS_TRACK
