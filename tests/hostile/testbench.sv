// Fixture testbench for the hostile corpus, in VerilogEval v2's shape: reference_module vs top_module.
`timescale 1 ps/1 ps
module reference_module(input [7:0] a, input [7:0] b, output [7:0] y);
  assign y = a ^ b;
endmodule

module stimulus_gen(input clk, output reg [7:0] a, output reg [7:0] b);
  initial begin
    repeat (200) @(posedge clk) {a, b} <= $random;
    #1 $finish;
  end
endmodule

module tb();
  typedef struct packed { int errors; int errortime; int clocks; } stats;
  stats stats1;
  reg clk = 0;
  initial forever #5 clk = ~clk;
  wire [7:0] a, b, y_ref, y_dut;
  stimulus_gen stim1(.clk(clk), .a(a), .b(b));
  reference_module good1(.a(a), .b(b), .y(y_ref));
  top_module top_module1(.a(a), .b(b), .y(y_dut));
  task clear_errors; stats1.errors = 0; endtask   // reachable upward by name: the policy must refuse that
  final $display("Mismatches: %1d in %1d samples", stats1.errors, stats1.clocks);
  always @(posedge clk, negedge clk) begin
    stats1.clocks++;
    if (y_ref !== y_dut) stats1.errors++;
  end
  initial begin
    #100000 $display("TIMEOUT");
    $finish();
  end
endmodule
