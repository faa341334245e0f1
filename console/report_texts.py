"""Texts of the team and analysis pages (and their workbook), added to the console's catalogue
(console/i18n.py) when console/reports.py is imported: one place per page family, one catalogue."""

from __future__ import annotations

from console import i18n

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "team": "Team", "analysis": "Analysis", "team_title": "Team: open exceptions",
        "analysis_title": "Analysis", "open_by_owner": "Open exceptions by owner and age",
        "lt1d": "< 1 day", "1-3d": "1–3 days", "3-7d": "3–7 days", "7d+": "7+ days",
        "open": "open", "total": "Total", "person": "Person", "name": "Name",
        "escalations": "Escalations waiting", "no_escalations": "No escalation is waiting.",
        "level": "level", "escalates_to": "escalates to", "due_in": "in", "overdue_by": "due since",
        "period": "Period", "period_30": "30 days", "period_90": "90 days", "period_all": "all",
        "dimension": "By", "group": "Group", "orders": "Orders", "judged": "judged", "good": "good", "rate": "rate",
        "on_time": "On time", "complete": "Complete", "accurate": "Accurate",
        "on_time_help": "completed by the due date; open orders past due count as late",
        "complete_help": "finished orders that got their whole ordered quantity",
        "accurate_help": "orders on which no exception (nor unapproved change) was ever recorded",
        "ageing": "Overdue receivables and payables", "receivable": "Receivable", "payable": "Payable",
        "direction": "Direction", "currency": "Currency", "count": "Count", "amount": "Amount owed",
        "weekly": "Exceptions per family per week", "week": "Week", "week_start": "Monday",
        "ack_median": "Median time to acknowledge", "acknowledged_n": "Acknowledged",
        "median_seconds": "Median (s)", "median_hours": "Median (h)", "median": "median",
        "download_xlsx": "Download XLSX", "as_json": "JSON", "not_judged": "–", "nothing_yet": "Nothing yet.",
        "sheet_rates": "Rates", "sheet_ageing": "Ageing", "sheet_weekly": "Weekly",
        "sheet_ack": "Acknowledgement", "as_of": "as of", "-": "other",
        "workers_missing": "Incomplete: these workers did not send their orders:",
    },
    "zh": {
        "team": "团队", "analysis": "分析", "team_title": "团队：未关闭的异常",
        "analysis_title": "归档与分析", "open_by_owner": "按负责人和时长统计的未关闭异常",
        "lt1d": "< 1 天", "1-3d": "1–3 天", "3-7d": "3–7 天", "7d+": "7 天以上",
        "open": "未关闭", "total": "合计", "person": "人员", "name": "姓名",
        "escalations": "待升级", "no_escalations": "没有待升级的异常。",
        "level": "级", "escalates_to": "将升级给", "due_in": "剩余", "overdue_by": "已到期",
        "period": "期间", "period_30": "近 30 天", "period_90": "近 90 天", "period_all": "全部",
        "dimension": "维度", "group": "分组", "orders": "订单数", "judged": "参与统计", "good": "达标",
        "rate": "比率",
        "on_time": "准时率", "complete": "完整率", "accurate": "准确率",
        "on_time_help": "在约定日期前完成；逾期未完成的订单计为不准时",
        "complete_help": "已完成订单中足量交付的比例",
        "accurate_help": "从未出现异常（包括未批准变更）的订单比例",
        "ageing": "逾期应收与应付账龄", "receivable": "应收", "payable": "应付",
        "direction": "方向", "currency": "币种", "count": "笔数", "amount": "未付金额",
        "weekly": "每周各类异常数", "week": "周", "week_start": "周一",
        "ack_median": "确认时长中位数", "acknowledged_n": "已确认数",
        "median_seconds": "中位数（秒）", "median_hours": "中位数（小时）", "median": "中位数",
        "download_xlsx": "下载 XLSX", "as_json": "JSON", "not_judged": "–", "nothing_yet": "暂无数据。",
        "sheet_rates": "比率", "sheet_ageing": "账龄", "sheet_weekly": "每周异常",
        "sheet_ack": "确认时长", "as_of": "截至", "-": "其他",
        "workers_missing": "数据不完整，以下节点未返回其订单：",
    },
}

for _lang, _texts in TEXTS.items():
    for _key, _text in _texts.items():
        i18n.CATALOGUE[_lang].setdefault(_key, _text)  # the console's own texts win
