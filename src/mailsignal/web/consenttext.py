"""The words of the recipient's consent page (web/consent.py), in the languages of the
consent request line (instrument/notice.CONSENT_LINES): English, German, French, Spanish.

What would be measured is said in the stop-tracking page's own words (stoptext.PAGE),
so the two pages cannot describe tracking differently; the rest is the consent page's.
The text a recipient agrees to (`agreed_text`) is recorded word for word as the proof.
"""

from __future__ import annotations

from .stoptext import PAGE as STOP_PAGE

TEXT_ID = "mailsignal-consent-page-v1"
_SHARED: tuple[str, ...] = ("open", "click", "download", "kept", "not", "nochange")
_SHARED += ("privacy", "invalid_title", "invalid", "used_title")
_OWN: dict[str, dict[str, str]] = {
    "en": {
        "title": "Allow tracking of my email",
        "intro": "The email that brought you here was sent with MailSignal, which can tell "
        "the sender how their email is received. It was sent without tracking. If you allow "
        "it, for each email the sender sends you it would record:",
        "button": "Allow",
        "effect": "From then on, the next emails sent to you are tracked. Each of them carries "
        "a link to stop tracking at any time, which also applies to emails already received.",
        "done_title": "Tracking is allowed",
        "done": "Thank you. The next emails sent to you are tracked; each one carries a link "
        "to stop tracking at any time.",
        "used": "This form was already sent. If tracking is not allowed yet, open the link "
        "in your email again.",
    },
    "de": {
        "title": "Tracking meiner E-Mails erlauben",
        "intro": "Die E-Mail, die Sie hierher geführt hat, wurde mit MailSignal versandt, das "
        "dem Absender mitteilen kann, wie seine E-Mail ankommt. Sie wurde ohne Tracking "
        "versandt. Wenn Sie es erlauben, würde es für jede E-Mail, die der Absender Ihnen "
        "schickt, aufzeichnen:",
        "button": "Erlauben",
        "effect": "Danach werden die nächsten E-Mails an Sie getrackt. Jede enthält einen "
        "Link, mit dem Sie das Tracking jederzeit beenden können, auch für bereits "
        "erhaltene E-Mails.",
        "done_title": "Tracking ist erlaubt",
        "done": "Danke. Die nächsten E-Mails an Sie werden getrackt; jede enthält einen Link, "
        "mit dem Sie das Tracking jederzeit beenden können.",
        "used": "Dieses Formular wurde bereits gesendet. Falls das Tracking noch nicht "
        "erlaubt ist, öffnen Sie den Link in Ihrer E-Mail erneut.",
    },
    "fr": {
        "title": "Autoriser le suivi de mes e-mails",
        "intro": "L'e-mail qui vous a mené ici a été envoyé avec MailSignal, qui peut "
        "indiquer à l'expéditeur comment ses e-mails sont reçus. Il a été envoyé sans suivi. "
        "Si vous l'autorisez, pour chaque e-mail que l'expéditeur vous envoie, il "
        "enregistrerait :",
        "button": "Autoriser",
        "effect": "Ensuite, les prochains e-mails qui vous sont envoyés sont suivis. Chacun "
        "contient un lien pour arrêter le suivi à tout moment, y compris pour les e-mails "
        "déjà reçus.",
        "done_title": "Le suivi est autorisé",
        "done": "Merci. Les prochains e-mails qui vous sont envoyés sont suivis ; chacun "
        "contient un lien pour arrêter le suivi à tout moment.",
        "used": "Ce formulaire a déjà été envoyé. Si le suivi n'est pas encore autorisé, "
        "ouvrez à nouveau le lien de votre e-mail.",
    },
    "es": {
        "title": "Permitir el seguimiento de mis correos",
        "intro": "El correo que le ha traído aquí se envió con MailSignal, que puede indicar "
        "al remitente cómo se reciben sus correos. Se envió sin seguimiento. Si lo permite, "
        "por cada correo que el remitente le envíe registraría:",
        "button": "Permitir",
        "effect": "A partir de entonces, los próximos correos que le envíen tendrán "
        "seguimiento. Cada uno lleva un enlace para detenerlo en cualquier momento, también "
        "para los correos ya recibidos.",
        "done_title": "El seguimiento está permitido",
        "done": "Gracias. Los próximos correos que le envíen tendrán seguimiento; cada uno "
        "lleva un enlace para detenerlo en cualquier momento.",
        "used": "Este formulario ya se envió. Si el seguimiento aún no está permitido, vuelva "
        "a abrir el enlace de su correo.",
    },
}
PAGE: dict[str, dict[str, str]] = {
    lang: {key: STOP_PAGE[lang][key] for key in _SHARED} | own for lang, own in _OWN.items()
}


def agreed_text(lang: str) -> str:
    """The text a recipient agrees to by pressing the button, as the page shows it."""
    t = PAGE[lang]
    parts = [t["title"], t["intro"], *(f"- {t[k]}" for k in ("open", "click", "download"))]
    return "\n".join([*parts, t["kept"], t["not"], t["effect"]])
