"""Mail edges: reply classification (`replies`, pure), IMAP sync (`imap`, `sync`) and CLI."""
