"""The console's texts in English and Chinese (its own small catalogue: message texts live in alerts/).

`texts(lang)` gives a function from a key to the text; a key missing in one language falls back to
English, and an unknown key shows itself (a missing translation is visible, never an error).
"""

from __future__ import annotations

from collections.abc import Callable

LANGUAGES = ("en", "zh")

CATALOGUE: dict[str, dict[str, str]] = {
    "en": {
        "title": "orderwatch",
        "my_exceptions": "My exceptions",
        "signed_in_as": "Signed in as",
        "machine": "API token",
        "sign_out": "Sign out",
        "language": "中文",
        "filters": "Filter",
        "family": "Family",
        "severity": "Severity",
        "state": "State",
        "supplier": "Supplier",
        "customer": "Customer",
        "any": "any",
        "apply": "Apply",
        "clear": "Clear",
        "open_alerts": "open",
        "none": "Nothing needs you right now.",
        "owner": "Owner",
        "since": "since",
        "age": "age",
        "acknowledged_by": "acknowledged by",
        "silenced": "snoozed",
        "act": "Act on it",
        "comment": "Comment",
        "comment_placeholder": "what you are doing about it",
        "acknowledge": "Acknowledge",
        "resolve": "Resolve by hand",
        "add_comment": "Add comment",
        "snooze": "Snooze",
        "hours": "hours",
        "days": "days",
        "history": "History",
        "back": "Back to my exceptions",
        "firing": "firing",
        "acknowledged": "acknowledged",
        "resolved": "resolved",
        "critical": "critical",
        "warning": "warning",
        "info": "info",
        "signin_title": "Sign in",
        "signin_help": "Open the personal link in one of your orderwatch notifications (email or chat) "
                       "to sign in. Links expire; a newer notification carries a new one.",
        "refused": "This link cannot be used",
        "done_ack": "Acknowledged.",
        "done_resolve": "Resolved.",
        "done_comment": "Comment added.",
        "done_snooze": "Snoozed.",
        "no_such_alert": "No such alert, or not one of yours.",
        "days_short": "d",
        "hours_short": "h",
        "minutes_short": "m",
        "commented": "commented",
        "notified": "notified",
        "notify_failed": "notification failed",
        "notify_cancelled": "notification cancelled",
        "escalated": "escalated",
        "unsilenced": "snooze ended",
        "updated": "updated",
        "delay": "delay",
        "stock": "stock",
        "payment": "payment",
        "unapproved_change": "unapproved change",
        "ready_ack": "Add a comment if you like, then press Acknowledge: reminders and escalation stop.",
        "reassign": "Reassign",
        "reassign_to": "Give to",
        "reassigned": "reassigned",
        "done_reassign": "Reassigned.",
        "open_in_erp": "Open in the ERP",
        "order_not_held": "The order's current state is not available (no worker holds it now).",
        "fields": "Fields",
        "lines": "Lines",
        "alerts": "Alerts",
        "timeline": "Timeline",
        "changed": "changed",
        "order": "Order",
    },
    "zh": {
        "title": "orderwatch 订单异常",
        "my_exceptions": "我的异常",
        "signed_in_as": "当前用户",
        "machine": "API 令牌",
        "sign_out": "退出",
        "language": "English",
        "filters": "筛选",
        "family": "类别",
        "severity": "严重程度",
        "state": "状态",
        "supplier": "供应商",
        "customer": "客户",
        "any": "全部",
        "apply": "筛选",
        "clear": "清除",
        "open_alerts": "条未关闭",
        "none": "目前没有需要您处理的异常。",
        "owner": "负责人",
        "since": "开始于",
        "age": "持续",
        "acknowledged_by": "已确认：",
        "silenced": "已暂停提醒",
        "act": "处理",
        "comment": "备注",
        "comment_placeholder": "您正在如何处理",
        "acknowledge": "确认",
        "resolve": "手动关闭",
        "add_comment": "添加备注",
        "snooze": "暂停提醒",
        "hours": "小时",
        "days": "天",
        "history": "记录",
        "back": "返回我的异常",
        "firing": "告警中",
        "acknowledged": "已确认",
        "resolved": "已关闭",
        "critical": "严重",
        "warning": "警告",
        "info": "提示",
        "signin_title": "登录",
        "signin_help": "请打开 orderwatch 通知（邮件或聊天消息）中的个人链接登录。链接会过期，新的通知会带有新的链接。",
        "refused": "此链接无法使用",
        "done_ack": "已确认。",
        "done_resolve": "已关闭。",
        "done_comment": "已添加备注。",
        "done_snooze": "已暂停提醒。",
        "no_such_alert": "没有这条异常，或它不归您处理。",
        "days_short": "天",
        "hours_short": "小时",
        "minutes_short": "分钟",
        "commented": "备注",
        "notified": "已通知",
        "notify_failed": "通知失败",
        "notify_cancelled": "通知已取消",
        "escalated": "已升级",
        "unsilenced": "暂停结束",
        "updated": "已更新",
        "delay": "延迟",
        "stock": "缺货",
        "payment": "付款",
        "unapproved_change": "未批准变更",
        "ready_ack": "可填写备注,然后点击“确认”:提醒和升级将停止。",
        "reassign": "转交",
        "reassign_to": "转交给",
        "reassigned": "已转交",
        "done_reassign": "已转交。",
        "open_in_erp": "在 ERP 中打开",
        "order_not_held": "暂时无法获取该订单的当前状态(没有工作进程持有它)。",
        "fields": "字段",
        "lines": "明细行",
        "alerts": "异常",
        "timeline": "时间线",
        "changed": "修改",
        "order": "订单",
    },
}


def pick(*candidates: str | None) -> str:
    """The first candidate that is a console language (a query, a cookie, the person's, the default)."""
    return next((c for c in candidates if c in LANGUAGES), "en")


def texts(lang: str) -> Callable[[str], str]:
    own, fallback = CATALOGUE.get(lang, CATALOGUE["en"]), CATALOGUE["en"]
    return lambda key: own.get(key) or fallback.get(key) or key


def age(seconds: float, lang: str) -> str:
    """A compact age: 3d 4h, 5h 10m, 12m."""
    t = texts(lang)
    s = max(0, int(seconds))
    d, h, m = s // 86400, s % 86400 // 3600, s % 3600 // 60
    if d:
        return f"{d}{t('days_short')} {h}{t('hours_short')}"
    if h:
        return f"{h}{t('hours_short')} {m}{t('minutes_short')}"
    return f"{m}{t('minutes_short')}"
