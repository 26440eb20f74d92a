from django import template

register = template.Library()


@register.filter
def duration(seconds: int) -> str:
    """A duration in words a player reads at a glance: 45 s, 5 min, 1 h 30 min, 1 day."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        minutes, rest = divmod(seconds, 60)
        return f"{minutes} min" + (f" {rest} s" if rest else "")
    if seconds < 86400:
        hours, rest = divmod(seconds, 3600)
        return f"{hours} h" + (f" {rest // 60} min" if rest // 60 else "")
    days = seconds // 86400
    return f"{days} day" + ("s" if days != 1 else "")
