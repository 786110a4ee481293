"""The exchange side: frame parsing, recordings, the WebSocket client, capture and a simulator."""
