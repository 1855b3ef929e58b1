"""The mail edges: the SMTP relay (server, relay, staging, the outbound spool and its
delivery worker, DKIM, AUTH), bounces it writes, and the IMAP client reply sync uses.
What they do with a message is the services' (outgoing.py, pipeline/)."""
