"""The words of the recipient's stop-tracking page (web/stop.py), in each language the
stop-tracking line of a copy has (instrument/notice.py): English, German, French, Spanish.

Keep the languages of the two in step: a test holds every key present in each.
"""

from __future__ import annotations

PAGE: dict[str, dict[str, str]] = {
    "en": {
        "title": "Stop tracking my email",
        "intro": "The email that brought you here was sent with MailSignal, which tells the "
        "sender how their email is received. For each copy it records:",
        "open": "when it is opened: the email loads a tiny image from this server;",
        "click": "which links are clicked: each link passes through this server, which notes "
        "the click and sends you on at once;",
        "download": "which attachments are downloaded, where an attachment was replaced by a link.",
        "kept": "With each of these it keeps the time, the network address the request came "
        "from (and the network and country it belongs to) and the name of the program that "
        "made it.",
        "not": "It does not read your email, your mailbox, or anything else on your device, "
        "and it does not know whether you read the text.",
        "nochange": "Nothing changes until you press the button.",
        "button": "Stop tracking my email",
        "effect": "From then on, nothing more is recorded for your address, including for "
        "email you have already received, and new email to you is sent without tracking.",
        "done_title": "Tracking is stopped",
        "done": "Nothing more is recorded for your address, including for email you have "
        "already received, and new email to you is sent without tracking.",
        "privacy": "Read the sender's privacy notice",
        "invalid_title": "Link expired or invalid",
        "invalid": "This link has expired or is invalid. Open the link in your email again.",
        "used_title": "This form was already used",
        "used": "This form was already sent. If tracking is not stopped yet, open the link in "
        "your email again.",
    },
    "de": {
        "title": "Tracking meiner E-Mails beenden",
        "intro": "Die E-Mail, die Sie hierher geführt hat, wurde mit MailSignal versandt. "
        "MailSignal teilt dem Absender mit, wie seine E-Mail ankommt. Für jede Kopie "
        "zeichnet es auf:",
        "open": "wann sie geöffnet wird: Die E-Mail lädt ein winziges Bild von diesem Server;",
        "click": "welche Links angeklickt werden: Jeder Link führt über diesen Server, der "
        "den Klick vermerkt und Sie sofort weiterleitet;",
        "download": "welche Anhänge heruntergeladen werden, wo ein Anhang durch einen Link "
        "ersetzt wurde.",
        "kept": "Zu jedem Ereignis werden die Uhrzeit, die Netzwerkadresse der Anfrage (mit "
        "dem Netz und dem Land, zu dem sie gehört) und der Name des anfragenden Programms "
        "gespeichert.",
        "not": "Es liest weder Ihre E-Mails noch Ihr Postfach noch sonst etwas auf Ihrem "
        "Gerät, und es weiß nicht, ob Sie den Text gelesen haben.",
        "nochange": "Nichts ändert sich, bevor Sie auf die Schaltfläche drücken.",
        "button": "Tracking meiner E-Mails beenden",
        "effect": "Danach wird für Ihre Adresse nichts mehr aufgezeichnet, auch nicht für "
        "bereits erhaltene E-Mails, und neue E-Mails an Sie werden ohne Tracking versandt.",
        "done_title": "Das Tracking ist beendet",
        "done": "Für Ihre Adresse wird nichts mehr aufgezeichnet, auch nicht für bereits "
        "erhaltene E-Mails, und neue E-Mails an Sie werden ohne Tracking versandt.",
        "privacy": "Datenschutzhinweise des Absenders lesen",
        "invalid_title": "Link abgelaufen oder ungültig",
        "invalid": "Dieser Link ist abgelaufen oder ungültig. Öffnen Sie den Link in Ihrer "
        "E-Mail erneut.",
        "used_title": "Dieses Formular wurde bereits verwendet",
        "used": "Dieses Formular wurde bereits gesendet. Falls das Tracking noch nicht beendet "
        "ist, öffnen Sie den Link in Ihrer E-Mail erneut.",
    },
    "fr": {
        "title": "Ne plus suivre mes e-mails",
        "intro": "L'e-mail qui vous a mené ici a été envoyé avec MailSignal, qui indique à "
        "l'expéditeur comment son e-mail est reçu. Pour chaque copie, il enregistre :",
        "open": "quand elle est ouverte : l'e-mail charge une minuscule image depuis ce serveur ;",
        "click": "quels liens sont cliqués : chaque lien passe par ce serveur, qui note le "
        "clic et vous redirige aussitôt ;",
        "download": "quelles pièces jointes sont téléchargées, lorsqu'une pièce jointe a été "
        "remplacée par un lien.",
        "kept": "Pour chacun de ces événements, il conserve l'heure, l'adresse réseau d'où "
        "vient la requête (avec le réseau et le pays auxquels elle appartient) et le nom du "
        "programme qui l'a faite.",
        "not": "Il ne lit ni vos e-mails, ni votre boîte aux lettres, ni rien d'autre sur "
        "votre appareil, et il ne sait pas si vous avez lu le texte.",
        "nochange": "Rien ne change tant que vous n'appuyez pas sur le bouton.",
        "button": "Ne plus suivre mes e-mails",
        "effect": "Ensuite, plus rien n'est enregistré pour votre adresse, y compris pour les "
        "e-mails déjà reçus, et les nouveaux e-mails vous sont envoyés sans suivi.",
        "done_title": "Le suivi est arrêté",
        "done": "Plus rien n'est enregistré pour votre adresse, y compris pour les e-mails "
        "déjà reçus, et les nouveaux e-mails vous sont envoyés sans suivi.",
        "privacy": "Lire la politique de confidentialité de l'expéditeur",
        "invalid_title": "Lien expiré ou invalide",
        "invalid": "Ce lien a expiré ou n'est pas valide. Ouvrez à nouveau le lien de votre "
        "e-mail.",
        "used_title": "Ce formulaire a déjà été utilisé",
        "used": "Ce formulaire a déjà été envoyé. Si le suivi n'est pas encore arrêté, ouvrez "
        "à nouveau le lien de votre e-mail.",
    },
    "es": {
        "title": "Dejar de rastrear mis correos",
        "intro": "El correo que le ha traído hasta aquí se envió con MailSignal, que informa "
        "al remitente de cómo se recibe su correo. De cada copia registra:",
        "open": "cuándo se abre: el correo carga una imagen diminuta desde este servidor;",
        "click": "qué enlaces se pulsan: cada enlace pasa por este servidor, que anota el "
        "clic y le lleva a su destino al instante;",
        "download": "qué adjuntos se descargan, cuando un adjunto se sustituyó por un enlace.",
        "kept": "De cada uno guarda la hora, la dirección de red de la que vino la petición "
        "(con la red y el país a los que pertenece) y el nombre del programa que la hizo.",
        "not": "No lee su correo, ni su buzón, ni nada más de su dispositivo, y no sabe si "
        "usted ha leído el texto.",
        "nochange": "Nada cambia hasta que pulse el botón.",
        "button": "Dejar de rastrear mis correos",
        "effect": "A partir de entonces no se registra nada más para su dirección, tampoco de "
        "los correos ya recibidos, y los correos nuevos se le envían sin seguimiento.",
        "done_title": "El seguimiento se ha detenido",
        "done": "No se registra nada más para su dirección, tampoco de los correos ya "
        "recibidos, y los correos nuevos se le envían sin seguimiento.",
        "privacy": "Leer el aviso de privacidad del remitente",
        "invalid_title": "Enlace caducado o no válido",
        "invalid": "Este enlace ha caducado o no es válido. Abra de nuevo el enlace de su correo.",
        "used_title": "Este formulario ya se ha utilizado",
        "used": "Este formulario ya se envió. Si el seguimiento aún no se ha detenido, abra de "
        "nuevo el enlace de su correo.",
    },
}
