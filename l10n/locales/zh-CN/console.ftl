# 操作员控制台（fleet-console）。

## 导航行：八个屏幕连同编号在 80 列内放得下。
console-screen-overview = 总览
console-screen-site = 站点
console-screen-alarms = 告警
console-screen-work = 工作
console-screen-audit = 审计
console-screen-usage = 使用率
console-screen-planning = 规划
console-screen-fleet = 部署

## 状态行。
console-status-unreachable = 服务器无法连接：{ $error }（正在重试）
console-status-reconnected = 已重新连接
console-status-open-accepted = 远程开箱 { $device } { $box_no } 号箱格：{ $status }
console-status-open-refused = 远程开箱被拒绝：{ $error }
console-status-open-done = { $device } { $box_no } 号箱格：{ $status }
console-status-open-done-in = { $device } { $box_no } 号箱格：{ $status }，用时 { $ms } 毫秒
console-status-acked = 告警 { $alarm } 已确认
console-status-ack-refused = 确认被拒绝：{ $error }
console-status-deployed = 部署 { $deployment } 已更改
console-status-diagnosis = { $device } { $kind ->
    [doctor] 自检报告
   *[logs] 日志
}：{ $summary }
console-status-refreshing = 正在刷新
console-status-no-deployment = 未选择部署
console-status-deploy-needs-admin = 暂停、恢复和取消部署需要管理员角色
console-status-deployment-final = 部署 { $deployment } 已{ $state }：无可更改
console-status-no-site = 未选择站点
console-status-no-site-of = { $device } 不属于任何站点
console-status-select-box = 请先选择箱格：在站点上按 Enter，再按 Tab 进入其箱格
console-status-open-needs-operator = 远程开箱需要操作员角色；此令牌是{ $role }：请联系操作员
console-status-select-cabinet = 请先选择信包箱（站点屏幕）或告警，再按 d 或 g
console-status-ack-not-active = 告警 { $alarm } { $state }；只能确认未处理的告警
console-status-ack-needs-operator = 确认告警需要操作员角色
console-status-reason-required = 必须填写原因：原因会写入审计日志
console-status-opening = 正在开启 { $device } { $box_no } 号箱格
console-status-note-required = 必须填写备注：说明您正在如何处理
console-status-cancel-note-required = 取消部署必须填写备注：说明原因
console-status-deploying = 正在{ $act ->
    [pause] 暂停
    [resume] 恢复
   *[cancel] 取消
}部署 { $deployment }…

## 帮助。
console-help-screens = 总览、站点、告警、工作清单、审计、使用率、规划、部署
console-help-tab = 下一个窗格（站点：信包箱/箱格）或下一个屏幕
console-help-move = 移动；PgUp/PgDn 每次十行
console-help-sideways = 在箱格网格中移动；切换工作清单
console-help-enter = 打开站点 / 进入箱格 / 跳到告警所在箱格
console-help-esc = 返回、清除筛选、关闭对话框
console-help-filter = 筛选屏幕上的列表（输入，Enter 保留，Esc 清除）
console-help-open = 远程开箱：打开所选箱格（操作员；须填原因）
console-help-ack = 确认所选告警（操作员；须填备注）
console-help-diagnose = 信包箱的自检报告 / 最新日志（操作员可重新请求）
console-help-deploy = 部署屏幕：暂停或恢复 / 取消所选部署（管理员）
console-help-refresh = 立即刷新（使用率：数据；规划：方案）
console-help-help = 本帮助（按任意键关闭）
console-help-quit = 退出
console-help-letters-key = 字母
console-help-letters = 箱格状态：F 空闲，R 已预约，O 占用，X 停用
console-help-flags-key = 标记
console-help-flags = ! 未处理告警，D 门开着，L 逾期
console-help-header-key = 标题栏
console-help-header = ● 在线，○ 连接中，✕ 断开；数据新旧自上次应答起算
console-help-colours-key = 颜色
console-help-colours = 只是重复字母：不靠颜色也能读懂

## 框架：标题栏、状态行、对话框。
console-too-small = 终端窗口太小
console-too-small-size = 当前 { $width }×{ $height }；控制台需要 { $need_width }×{ $need_height }。
console-too-small-hint = 请放大窗口，或按 q 退出。
console-link-live = 在线
console-link-connecting = 连接中
console-link-down = 断开
console-data-age = 数据已 { $age }
console-no-data = 尚无数据
console-filter-typing = /{ $filter }▏（Enter 保留，Esc 清除）
console-filter-kept = 筛选：{ $filter }（Esc 清除）· { $status }
console-hint = ? 帮助 · q 退出
console-help-title = { " " }按键{ " " }
console-open-title = { " " }远程开箱：{ $device } { $box_no } 号箱格{ " " }
console-open-question = 箱门会立即打开。原因是什么？（写入审计日志）
console-open-field = 原因
console-open-keys = Enter 开箱 · Esc 取消
console-ack-title = { " " }确认告警 { $alarm }{ " " }
console-ack-question = 告警在其条件消失前保持打开。您正在如何处理？
console-note-field = 备注
console-ack-keys = Enter 确认 · Esc 取消
console-deploy-title = { " " }{ $act ->
    [pause] 暂停
    [resume] 恢复
   *[cancel] 取消
}部署 { $deployment }{ " " }
console-deploy-cancel-question = 不再下发；信包箱保留当前运行的版本。原因是什么？
console-deploy-pause-question = 恢复前不再下发。原因是什么？（可选）
console-deploy-resume-question = 继续下发（手动部署开始下一批）。原因是什么？（可选）
console-deploy-keys = Enter 确定 · Esc 取消

## 时长与延迟。
console-age-s = { $n } 秒
console-age-min = { $n } 分钟
console-age-h = { $n } 小时
console-age-d = { $n } 天
console-latency = （{ $ms } 毫秒）

## 站点屏幕：信包箱、箱格网格、所选箱格。
console-site-boxes-of = { " " }{ $cabinet } · 箱格{ " " }
console-site-boxes = { " " }箱格{ " " }
console-site-no-boxes = 没有箱格（驿站设备，或尚未加载）
console-box-title = { " " }箱格{ " " }
console-box-watch = 远程开箱 { $device } { $box_no } 号箱格：
console-box-refused = { " " }被拒绝：{ $error }
console-box-head = { $box_no } 号箱格 · 规格 { $size } · { $state }
console-box-accessible = { " " }· 无障碍
console-box-door-open = { " " }· 箱门打开
console-box-door-shut = { " " }· 箱门关闭
console-box-hint-viewer = 远程开箱：此令牌的角色不可用（仅限操作员）
console-box-hint-open = o：远程开箱（须填原因）
console-box-item = 物品 { $item } { $flow } · 办件号 { $case } · { $state } · { $age }前
console-box-audit = { $age }前 { $actor } { $action }
console-box-none = 按 Tab 进入箱格，方向键选择，o 开箱

## 列标题（简短：放得进各自的列）。
console-col-site = 站点
console-col-kind = 类型
console-col-online = 在线
console-col-free = 空闲
console-col-occupied = 占用
console-col-reserved = 预约
console-col-out-of-service = 停用
console-col-faulty = 故障
console-col-today = 今日
console-col-uses = { $hours } 小时用量
console-col-alarms = 告警
console-col-severity = 级别
console-col-device = 设备
console-col-box = 箱格
console-col-state = 状态
console-col-count = 次数
console-col-age = 时长
console-col-flow = 流程
console-col-case = 办件号
console-col-due = 期限
console-col-who = 操作人
console-col-what = 操作
console-col-where = 位置
console-col-why = 原因
console-col-outcome = 结果
console-col-hours = 各小时
console-col-week = 7 天
console-col-avg = 平均
console-col-above = ≥比率
console-in = { $age }后
console-ago = { $age }前

## 总览、告警、工作、审计、使用率。
console-overview-title = { " " }站点 · Enter：信包箱与箱格{ " " }
console-overview-empty = 还没有站点：请通过 API 配置（POST /api/v1/sites）。
console-alarms-title = { " " }未消除的告警 · a：确认 · Enter：转到箱格 · /：筛选{ " " }
console-alarms-empty = 没有未消除的告警。
console-alarm-acked-by = { " " }· 由 { $by } 确认：{ $note }
console-alarm-escalated = { " " }· 已升级
console-alarm-no-site = 无站点
console-work-tab = { $tab ->
    [collect] 待收件
    [deposit] 出件
   *[overdue] 逾期
}
console-work-late = 迟存
console-work-title = { " " }← → 切换清单{ " " }
console-audit-title = { " " }谁在何时因何开了哪个箱格，结果如何{ " " }
console-usage-loading = { " " }正在加载使用率数据…
console-usage-saturated = 已饱和
console-usage-title = { " " }每小时占用率，最近 { $hours } 小时（·░▒▓█：<5/35/60/80%+）· 7 天 · 饱和：{ $window } 天中有 { $days } 天 ≥{ $rate }{ " " }

## 远程诊断浮层。
console-diag-asking = 正在向 { $device } 请求{ $kind ->
    [doctor] 自检报告
   *[logs] 最新日志
}…
console-diag-how = 应答经由信包箱自己的连接返回
console-diag-head = { $state ->
    [pending] 等待应答
    [answered] 已应答
    [expired] 已过期
   *[other] { $state }
} · 由 { $by } 于 { $age }前请求
console-diag-offline = 尚无应答：信包箱似乎离线；
console-diag-offline-until = 它恢复连接后会收到请求（还有 { $age }）
console-diag-level = 日志级别 { $level }
console-diag-dropped = { " " }· 环形缓冲区已丢弃 { $dropped } 行较早的日志
console-diag-refused = 信包箱拒绝应答：{ $reason }
console-diag-title = { " " }{ $device } · { $kind ->
    [doctor] 自检
   *[logs] 日志
}{ " " }
console-diag-keys = { " " }↑↓ PgUp PgDn 滚动 · r 重新请求 · Esc 关闭{ " " }

## 部署屏幕：部署与配置偏离。
console-fleet-loading = 正在加载部署和配置…
console-fleet-error = 无法显示设备群：{ $error }
console-fleet-list = { " " }部署{ " " }
console-fleet-none = 还没有部署（POST /api/v1/deployments）
console-fleet-deployment = { " " }部署{ " " }
console-fleet-head = { " " }· 第 { $wave }/{ $waves } 批 · { $by }，{ $age }前
console-fleet-pass = 通过线 { $percent }%
console-fleet-halt = 失败超过 { $percent }% 即中止
console-fleet-soak = 观察 { $age }
console-fleet-window = 时段 { $from }–{ $to }
console-fleet-manual = 手动分批
console-fleet-wave = 第 { $wave } 批 { $bar } { $ok }/{ $devices } 成功
console-fleet-going = ，{ $n } 台进行中
console-fleet-waiting = ，{ $n } 台等待中
console-fleet-failed = ，{ $failed } 台失败，{ $back } 台已回退
console-fleet-failures = { $n ->
   *[other] { $n } 台设备失败或已回退：
}
console-fleet-no-reason = 未给出原因
console-fleet-hint-viewer = 暂停、恢复和取消：仅限管理员
console-fleet-hint = p 暂停/恢复 · x 取消 · ↑↓ 其他部署
console-fleet-rollback = （回退）
console-drift-title = { " " }配置偏离：{ $n } 台设备{ " " }
console-drift-none = 所有设备都在运行期望的配置
console-drift-runs = 运行 { $version }
console-drift-state = { $state ->
    [waiting_restart] 等待重启以应用
    [refused] 已拒绝
   *[other] { $state }
}
console-drift-unreported = 尚未上报
console-drift-wants = 期望 { $version }

## 规划屏幕。
console-plan-computing = { " " }正在计算规划方案…
console-plan-none = { " " }没有规划方案：{ $error }
console-plan-title-short = { " " }规划{ " " }
console-plan-title = { " " }下一批集群信包箱设在哪里{ " " }
console-plan-coverage = { " " }距信包箱 { $radius } 米内的企业：现在 { $enterprises } 家中的 { $before } 家（{ $share_before }）→ 新增 { $sites } 个站点后 { $after } 家（{ $share_after }）。
console-plan-overflow = { " " }箱格数按最繁忙时段溢出率 { $overflow } 配置（Erlang 损失公式）。
console-plan-expansions = { " " }需要增加箱格的在用站点：
console-plan-expansion = { "   " }{ $site }：{ $boxes } 个箱格 → { $needed }（+{ $add }）
console-plan-yes = 是
console-plan-no = 否
console-plan-clusters = { " " }各企业聚集区覆盖率（目标：{ $target } 的企业在步行距离内）{ " " }
console-col-rank = 排名
console-col-enterprises = 企业数
console-col-cases = 月办件量
console-col-boxes = 箱格
console-col-usage = 使用率
console-col-overflow = 溢出率
console-col-cluster = 企业聚集区
console-col-before = 之前
console-col-after = 之后

## 数据任务报告的内容（括号内是服务器自己的说明）。
console-api-error = { $code ->
    [invalid_request] 请求有误
    [invalid_body] 请求内容有误
    [invalid_field] 字段取值无效
    [unauthorized] 令牌未被接受
    [forbidden] 此令牌的角色无权执行
    [not_found] 未找到
    [unknown_device] 没有这台设备
    [unknown_box] 没有这个箱格
    [conflict] 与当前状态冲突
    [no_free_box] 没有空闲箱格
    [too_large] 内容过大
    [rate_limited] 请求过于频繁：请稍候
    [unavailable] 服务器暂时无法处理
    [internal] 服务器错误
   *[other] 错误
}
console-api-unexpected = 无法识别的应答：{ $error }
console-net-cannot-connect = 无法连接（服务器在运行吗？）
console-net-timeout = 超时
console-check-token = （请检查 --token 令牌）
console-diag-no-answer = 此信包箱尚无{ $kind ->
    [doctor] 自检报告
   *[logs] 日志
}：操作员可以请求一份
console-open-no-command = 服务器接受了开箱请求，但没有返回指令编号
console-stream-refused = 变更流被拒绝
console-stream-silent = 30 秒内未收到服务器的保活消息
console-stream-closed = 服务器关闭了变更流

## 规划地图。
console-help-map = 规划屏幕：显示/隐藏地图；放大缩小、平移、全部显示
console-map-list = { " " }推荐站点{ " " }
console-map-title = { " " }地图 · 步行半径 { $radius } 米 · 缩放 ×{ $zoom }{ " " }
console-map-keys = { " " }· 需求点 ◉ 企业多 ■ 站点使用率 ◆ 推荐站点 ○ 步行半径 ✓/✕ 企业聚集区达标 · m 列表 · +- 缩放 · HJKL 平移 · 0 全部{ " " }
console-map-empty = { " " }暂无可绘制的内容：没有需求点、站点或推荐

## 操作员本次会话的操作记录（t）。
console-help-trail = 我本次的操作（远程开箱、确认告警）及结果
console-trail-title = { " " }我本次的操作（最新在前）{ " " }
console-trail-keys = { " " }按任意键关闭 · 所有人的操作见审计日志{ " " }
console-trail-empty = 暂无：远程开箱、确认告警和部署更改会连同结果显示在这里
console-trail-open = 远程开箱 { $device } { $box_no } 号箱格
console-trail-ack = 确认告警 { $alarm }
console-trail-deploy = { $act ->
    [pause] 暂停
    [resume] 恢复
   *[cancel] 取消
}部署 { $deployment }
console-trail-done = { $status ->
    [acknowledged] 已确认
    [changed] 已完成
    [opened] 已开箱
    [already_open] 原已打开
    [jammed] 卡住
    [failed] 失败
    [expired] 已过期
   *[other] { $status }
}
console-trail-failed = 被拒绝：{ $error }

## 只看故障（Ctrl-Z）。
console-help-faults = 只看故障：有告警、故障或设备离线的站点；未处理告警；逾期物品；饱和站点
console-status-faults-only = 只看故障（Ctrl-Z 显示全部）
console-status-everything = 显示全部
console-faults-badge = [只看故障]

## 命令行（:）。
console-help-command = 命令行：site 站点、cabinet 信包箱、case 办件号、alarm 告警编号、open 信包箱 箱格号、屏幕名；Tab 补全，↑↓ 历史
console-help-more = { " " }↑↓ 查看更多按键 · 其他任意键关闭{ " " }
console-cmd-no-match = （无匹配）
console-cmd-unknown = 未知命令 :{ $command }：可用 :site、:cabinet、:case、:alarm、:open、:overview、:alarms、:work、:audit、:usage、:plan、:fleet、:help、:quit
console-cmd-usage = 用法：{ $usage }
console-cmd-no-site = 没有匹配 { $site } 的站点
console-cmd-finding = 正在查找 { $what }…
console-cmd-no-alarm = 屏幕上没有以 { $alarm } 开头的告警（Ctrl-Z 显示全部）
console-cmd-no-case = 没有办件号为 { $case } 的物品

## fleet-console --print-keys：每个命令一行。
console-key-screen = 屏幕 { $n ->
    [1] 1，总览
    [2] 2，站点
    [3] 3，告警
    [4] 4，工作清单
    [5] 5，审计
    [6] 6，使用率
    [7] 7，规划
   *[other] 8，部署
}
console-key-up = 上移
console-key-down = 下移
console-key-left = 在箱格网格中左移；上一个工作清单
console-key-right = 在箱格网格中右移；下一个工作清单
console-key-page = 每次移动十行
console-key-doctor = 信包箱的自检报告（操作员可重新请求）
console-key-logs = 信包箱的最新日志（操作员可重新请求）
console-key-pause = 部署屏幕：暂停或恢复所选部署（管理员）
console-key-cancel = 部署屏幕：取消所选部署（管理员；须填备注）
console-key-map = 规划屏幕：显示或隐藏地图
console-key-zoom = 规划地图：放大 / 缩小
console-key-pan = 规划地图：平移
console-key-fit = 规划地图：显示全部
console-col-time = 时间
