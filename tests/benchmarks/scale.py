async def measure(stack, retained):
    return {}
