"""Dataverse's `usersettings.timezonecode` and the IANA zone MailSignal computes with.

Dataverse names a user's zone by an integer, Microsoft's time zone index (the
`timezonedefinition` table; 85 is "GMT Standard Time", 92 UTC, 110 "W. Europe Standard
Time"); MailSignal keeps the IANA name in `timezonename` too, which is what the date
operators use. A PATCH of either sets both (web/webapi/writes.py), so a code takes
effect for relative dates exactly as a name does.

The table: codes from Microsoft's "Microsoft Time Zone Index Values"
(learn.microsoft.com/previous-versions/windows/embedded/ms912391), each Windows zone's
IANA name from CLDR's windowsZones.xml (its "001" territory). No kept library ships the
index numbers (babel and tzlocal map Windows *names* only), hence this short table; a
code not in it is refused rather than guessed.
"""

from __future__ import annotations

ZONES: dict[int, str] = {
    0: "Etc/GMT+12",  # Dateline Standard Time
    1: "Pacific/Apia",  # Samoa Standard Time
    2: "Pacific/Honolulu",  # Hawaiian Standard Time
    3: "America/Anchorage",  # Alaskan Standard Time
    4: "America/Los_Angeles",  # Pacific Standard Time
    10: "America/Denver",  # Mountain Standard Time
    15: "America/Phoenix",  # US Mountain Standard Time
    20: "America/Chicago",  # Central Standard Time
    25: "America/Regina",  # Canada Central Standard Time
    30: "America/Mexico_City",  # Mexico Standard Time
    33: "America/Guatemala",  # Central America Standard Time
    35: "America/New_York",  # Eastern Standard Time
    40: "America/Indiana/Indianapolis",  # US Eastern Standard Time
    45: "America/Bogota",  # SA Pacific Standard Time
    50: "America/Halifax",  # Atlantic Standard Time
    55: "America/La_Paz",  # SA Western Standard Time
    56: "America/Santiago",  # Pacific SA Standard Time
    60: "America/St_Johns",  # Newfoundland Standard Time
    65: "America/Sao_Paulo",  # E. South America Standard Time
    70: "America/Cayenne",  # SA Eastern Standard Time
    73: "America/Nuuk",  # Greenland Standard Time
    80: "Atlantic/Azores",  # Azores Standard Time
    83: "Atlantic/Cape_Verde",  # Cape Verde Standard Time
    85: "Europe/London",  # GMT Standard Time
    90: "Atlantic/Reykjavik",  # Greenwich Standard Time
    92: "UTC",  # UTC (Coordinated Universal Time): the column's default
    95: "Europe/Budapest",  # Central Europe Standard Time
    100: "Europe/Warsaw",  # Central European Standard Time
    105: "Europe/Paris",  # Romance Standard Time
    110: "Europe/Berlin",  # W. Europe Standard Time
    113: "Africa/Lagos",  # W. Central Africa Standard Time
    115: "Europe/Chisinau",  # E. Europe Standard Time
    120: "Africa/Cairo",  # Egypt Standard Time
    125: "Europe/Kiev",  # FLE Standard Time
    130: "Europe/Bucharest",  # GTB Standard Time
    135: "Asia/Jerusalem",  # Israel Standard Time
    140: "Africa/Johannesburg",  # South Africa Standard Time
    145: "Europe/Moscow",  # Russian Standard Time
    150: "Asia/Riyadh",  # Arab Standard Time
    155: "Africa/Nairobi",  # E. Africa Standard Time
    158: "Asia/Baghdad",  # Arabic Standard Time
    160: "Asia/Tehran",  # Iran Standard Time
    165: "Asia/Dubai",  # Arabian Standard Time
    170: "Asia/Yerevan",  # Caucasus Standard Time
    175: "Asia/Kabul",  # Afghanistan Standard Time
    180: "Asia/Yekaterinburg",  # Ekaterinburg Standard Time
    185: "Asia/Tashkent",  # West Asia Standard Time
    190: "Asia/Kolkata",  # India Standard Time
    193: "Asia/Kathmandu",  # Nepal Standard Time
    195: "Asia/Almaty",  # Central Asia Standard Time
    200: "Asia/Colombo",  # Sri Lanka Standard Time
    201: "Asia/Novosibirsk",  # N. Central Asia Standard Time
    203: "Asia/Yangon",  # Myanmar Standard Time
    205: "Asia/Bangkok",  # SE Asia Standard Time
    207: "Asia/Krasnoyarsk",  # North Asia Standard Time
    210: "Asia/Shanghai",  # China Standard Time
    215: "Asia/Singapore",  # Singapore Standard Time
    220: "Asia/Taipei",  # Taipei Standard Time
    225: "Australia/Perth",  # W. Australia Standard Time
    227: "Asia/Irkutsk",  # North Asia East Standard Time
    230: "Asia/Seoul",  # Korea Standard Time
    235: "Asia/Tokyo",  # Tokyo Standard Time
    240: "Asia/Yakutsk",  # Yakutsk Standard Time
    245: "Australia/Darwin",  # AUS Central Standard Time
    250: "Australia/Adelaide",  # Cen. Australia Standard Time
    255: "Australia/Sydney",  # AUS Eastern Standard Time
    260: "Australia/Brisbane",  # E. Australia Standard Time
    265: "Australia/Hobart",  # Tasmania Standard Time
    270: "Asia/Vladivostok",  # Vladivostok Standard Time
    275: "Pacific/Port_Moresby",  # West Pacific Standard Time
    280: "Pacific/Guadalcanal",  # Central Pacific Standard Time
    285: "Pacific/Fiji",  # Fiji Standard Time
    290: "Pacific/Auckland",  # New Zealand Standard Time
    300: "Pacific/Tongatapu",  # Tonga Standard Time
}
# A name several codes could stand for (none today) keeps the first, lowest code.
CODES: dict[str, int] = {}
for _code, _name in sorted(ZONES.items()):
    CODES.setdefault(_name, _code)
UTC_CODE = 92


def zone_of(code: int) -> str | None:
    """The IANA name Dataverse's time zone `code` stands for; None for a code not known."""
    return ZONES.get(code)


def code_of(name: str) -> int | None:
    """The Dataverse code of the IANA zone `name`, if the table has one."""
    return CODES.get(name)
