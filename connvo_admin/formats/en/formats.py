"""Date and time formats for English (en-gb included): 24-hour times to the second, so an audit
entry in Django's admin reads "30 Nov 2026, 14:02:11" and can be matched against log lines."""

DATETIME_FORMAT = "j M Y, H:i:s"
TIME_FORMAT = "H:i:s"
SHORT_DATETIME_FORMAT = "d/m/Y H:i:s"
