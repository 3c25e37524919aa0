# 规划报告（`fleet-server plan`）及其在 stderr 上的进度。

planner-coverage = 距信包箱 { $radius } 米内的企业：现在 { $enterprises } 家中的 { $before } 家（{ $share_before }），新增 { $sites } 个站点后 { $after } 家（{ $share_after }）。
planner-sizing = 箱格数按高峰时段溢出率 { $overflow } 配置（高峰为平均时段的 { $peak } 倍，平均存放 { $dwell } 小时，每件办件使用 { $uses } 次）。
planner-col-rank = 排名
planner-col-candidate = 候选站点
planner-col-lat = 纬度
planner-col-lon = 经度
planner-col-enterprises = 企业数
planner-col-cases = 月办件量
planner-col-sizes = 小/中/大
planner-col-boxes = 箱格
planner-col-usage = 使用率
planner-col-overflow = 溢出率
planner-capped = （受 max_boxes 箱格上限限制）
planner-none-asked = （未要求新增站点）
planner-none-reach = （没有候选站点能覆盖尚未覆盖的需求）
planner-no-cases = （未配置箱格数：没有需求点提供 monthly_cases；补上该列即可配置）
planner-some-cases = （{ $points } 个需求点中有 { $without } 个未提供 monthly_cases：箱格数按其余需求点的办件量配置）
planner-expansions = 需要增加箱格的在用站点：
planner-expansion = { $site } { $boxes } 个箱格 -> { $needed }（+{ $add }）：最繁忙时段占用 { $peak }，每天拒绝 { $refused } 次
planner-clusters = 聚集区（目标：每个聚集区 { $target } 的企业在步行距离内）：
planner-clusters-density = 按密度划分：每个 { $radius } 米内企业密度峰值周围的需求点，至少 { $min } 个
planner-clusters-named = 按需求点自带的名称划分
planner-clusters-both = { $named } 个按需求点自带的名称划分，{ $dense } 个在未命名的需求点中按密度划分（{ $radius } 米内企业密度峰值）
planner-cluster-row = { $enterprises } 家企业 { $before } -> { $after }
planner-meets = 达到目标
planner-below = 未达目标
planner-more-clusters = ……另有 { $count } 个较小的聚集区（{ $enterprises } 家企业）
planner-scattered = ……另有 { $count } 个不属于任何聚集区的分散需求点（{ $enterprises } 家企业）

## 进度，输出到 stderr。
planner-no-database = { $path } 没有信包箱网络数据库（用 --data-dir 或 --database-url 指定网络，才能计入在用站点）：按没有在用站点规划
planner-progress-reach = 规划：{ $points } 个需求点，{ $candidates } 个候选站点：正在计算步行距离
planner-progress-greedy = 初选方案覆盖 { $covered }；正在寻找更好的方案
planner-progress-search = 已搜索 { $percent }%：目前最好的方案覆盖 { $covered }
planner-done = 规划用时 { $seconds } 秒
