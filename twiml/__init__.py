"""TwiML builders: pure functions from what a step of a call or text must do to the XML Twilio runs.

No Flask, no database: each function takes plain values (texts, URLs, settings) and returns a
`VoiceResponse` or `MessagingResponse`, so the call flow can be read, and tested, one step at a time.
"""
