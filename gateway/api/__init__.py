"""aiohttp handlers: parse → authorize → call services → render. Nothing else lives here."""
