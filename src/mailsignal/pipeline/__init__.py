"""Services that move signals into the store and keep what is derived from them right.

Read top to bottom, the path of a hit (DESIGN §1 step 3):

    worker.py      the ingest worker: journal batch -> `ingest.store_hits` -> cursor;
                   the hourly sweep on a timer
    ingest.py      one batch of hits: name their deliveries, enrich, classify each
                   touched recipient timeline, insert the new events, tally
    rows.py        a hit and its facts -> an `interactionforemail` row
    timelines.py   classify whole recipient timelines (stored events and new ones) and
                   say which stored verdicts changed
    tally.py       what changed -> email counters, party scores and roll-ups
                   (engagement.py's arithmetic), by delta, or rebuilt where a delta cannot
    backfill.py    a long stream of hits (`import hits`)
    sweep.py       time-based rules (the hourly sweep) and `classify --recompute`

and of a reply:

    replies.py     messages -> matched to sent emails by header -> reply events -> tally
    mailboxes.py   a rep's IMAP mailbox settings (the secret sealed)
    mailsync.py    read mailboxes (or files) batch by batch -> replies.py

Nothing here writes SQL (store/ does) or talks to a socket (mail/ does).
"""
