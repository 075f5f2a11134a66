"""callcenter: a self-hosted task router with a Twilio voice contact center built on it."""
